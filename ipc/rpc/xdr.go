package rpc

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/xdrpp/goxdr/xdr"
)

// Value is a value of a type goxdr generated from a .x file (or one of goxdr's
// built-in XdrTypes: XDR_int32(&i), XDR_uint64(&u), xdr.XdrString{...}), taken
// through its XDR_T function: XDR_Args(&args). Calls encode and decode arguments
// and results through it, with this package's own RFC 4506 encoder and decoder.
type Value = xdr.XdrType

// Void is the Value of XDR void: nothing on the wire.
var Void Value = &xdr.XdrVoid{}

// encoder appends the RFC 4506 encoding of values to b. It implements goxdr's XDR
// interface. A value out of its bounds (a string longer than string<n>) panics with
// an xdrFail, which the callers turn into an error.
type encoder struct{ b []byte }

// xdrFail carries an encoding or decoding error through the generated code.
type xdrFail struct{ err error }

func fail(format string, args ...any) { panic(xdrFail{fmt.Errorf(format, args...)}) }

func (e *encoder) Sprintf(string, ...any) string { return "" }

func (e *encoder) Marshal(_ string, v xdr.XdrType) {
	switch v := v.(type) {
	case *xdr.XdrSize:
		if v.Size > v.Bound {
			fail("vector of %d elements over its bound %d", v.Size, v.Bound)
		}
		e.b = binary.BigEndian.AppendUint32(e.b, v.Size)
	case xdr.XdrNum32:
		e.b = binary.BigEndian.AppendUint32(e.b, v.GetU32())
	case xdr.XdrNum64:
		e.b = binary.BigEndian.AppendUint64(e.b, v.GetU64())
	case xdr.XdrString:
		if uint64(len(*v.Str)) > uint64(v.Bound) {
			fail("string of %d bytes over its bound %d", len(*v.Str), v.Bound)
		}
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(*v.Str)))
		e.b = append(e.b, *v.Str...)
		e.pad(len(*v.Str))
	case xdr.XdrVarBytes:
		p := v.GetByteSlice()
		if uint64(len(p)) > uint64(v.XdrBound()) {
			fail("%s of %d bytes over its bound %d", typeName(v), len(p), v.XdrBound())
		}
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(p)))
		e.b = append(e.b, p...)
		e.pad(len(p))
	case xdr.XdrBytes:
		p := v.GetByteSlice()
		e.b = append(e.b, p...)
		e.pad(len(p))
	case xdr.XdrAggregate:
		v.XdrRecurse(e, "")
	default:
		fail("cannot encode %T", v)
	}
}

func (e *encoder) pad(n int) {
	for ; n%4 != 0; n++ {
		e.b = append(e.b, 0)
	}
}

// decoder reads values from an XDR encoding held in memory. Every length is checked
// against its bound and against the bytes left before anything is allocated for
// it: a vector of n elements needs at least 4n bytes left (every XDR item takes at
// least 4), an opaque or string of n bytes n bytes and padding. Enums must hold one
// of their declared values, booleans 0 or 1, padding zeros.
//
// Nesting is bounded too: an aggregate (struct, union, optional pointer, array)
// nested more than MaxXDRDepth deep is an error, so that the input of a recursive
// type (struct node { node *next; }) cannot make the decoder recurse until the
// goroutine's stack overflows, which no recover can catch.
type decoder struct {
	b     []byte
	off   int
	depth int
}

// MaxXDRDepth is how deeply aggregates (structs, unions, optional pointers, fixed
// and variable arrays) may nest in decoded data. goxdr code recurses once per
// level, and a linked list (struct node { node *next; }) takes two levels per
// element (the pointer and the struct): a list longer than about MaxXDRDepth/2
// elements does not decode.
const MaxXDRDepth = 1000

func (d *decoder) Sprintf(string, ...any) string { return "" }

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) u32() uint32 {
	if d.left() < 4 {
		fail("data ends inside a 4-byte item")
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) bytes(n uint32) []byte {
	padded := (uint64(n) + 3) &^ 3
	if uint64(d.left()) < padded {
		fail("item of %d bytes overruns the data (%d bytes left)", n, d.left())
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	for _, z := range d.b[d.off+int(n) : d.off+int(padded)] {
		if z != 0 {
			fail("non-zero padding")
		}
	}
	d.off += int(padded)
	return p
}

func (d *decoder) Marshal(_ string, v xdr.XdrType) {
	switch v := v.(type) {
	case *xdr.XdrSize:
		n := d.u32()
		if n > v.Bound {
			fail("vector of %d elements over its bound %d", n, v.Bound)
		}
		if uint64(n) > uint64(d.left()/4) {
			fail("vector of %d elements cannot fit in the %d bytes left", n, d.left())
		}
		v.Size = n
	case xdr.XdrEnum:
		n := d.u32()
		if _, ok := v.XdrEnumNames()[int32(n)]; !ok {
			fail("%d is not a value of enum %s", int32(n), typeName(v))
		}
		v.SetU32(n)
	case xdr.XdrNum32:
		v.SetU32(d.u32()) // a bool or a pointer's presence flag panics past 1
	case xdr.XdrNum64:
		hi := uint64(d.u32())
		v.SetU64(hi<<32 | uint64(d.u32()))
	case xdr.XdrVarBytes:
		n := d.u32()
		if n > v.XdrBound() {
			fail("%s of %d bytes over its bound %d", typeName(v), n, v.XdrBound())
		}
		p := d.bytes(n)
		switch dst := v.XdrPointer().(type) {
		case *string:
			*dst = string(p)
		case *[]byte:
			// Into the capacity already there: a caller's buffer is reused.
			*dst = append((*dst)[:0], p...)
		default:
			v.SetByteSlice(append([]byte(nil), p...))
		}
	case xdr.XdrBytes:
		dst := v.GetByteSlice()
		copy(dst, d.bytes(uint32(len(dst))))
	case xdr.XdrAggregate:
		if d.depth >= MaxXDRDepth {
			fail("%s nested more than %d deep", typeName(v), MaxXDRDepth)
		}
		d.depth++
		v.XdrRecurse(d, "")
		d.depth--
	default:
		fail("cannot decode %T", v)
	}
}

// typeName is v's XDR type name, or its Go type's if v cannot say (a typed nil).
func typeName(v Value) (name string) {
	defer func() {
		if recover() != nil {
			name = fmt.Sprintf("%T", v)
		}
	}()
	return v.XdrTypeName()
}

// nilValue reports whether v points nowhere (XDR_uint64(nil), say): decoding into it
// is bad input.
func nilValue(v Value) (isNil bool) {
	defer func() {
		if recover() != nil {
			isNil = true
		}
	}()
	p := reflect.ValueOf(v.XdrPointer())
	return p.Kind() == reflect.Pointer && p.IsNil()
}

// catch turns a panic of the XDR code (ours or goxdr's) into an error.
func catch(err *error) {
	switch r := recover().(type) {
	case nil:
	case xdrFail:
		*err = r.err
	case xdr.XdrError:
		*err = fmt.Errorf("%s", string(r))
	default:
		panic(r)
	}
}

// appendValue appends v's encoding to e.b. The value is the caller's: any panic in
// its generated code (a typed nil pointer, say) is bad input, an error.
func (e *encoder) appendValue(v Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch r := r.(type) {
			case xdrFail:
				err = r.err
			case xdr.XdrError:
				err = fmt.Errorf("%s", string(r))
			default:
				err = fmt.Errorf("encoding %s: %v", typeName(v), r)
			}
		}
	}()
	v.XdrMarshal(e, "")
	return nil
}

// decodeValue decodes v from all of b: bytes left over are an error too.
func (d *decoder) decodeValue(b []byte, v Value) (err error) {
	d.b, d.off, d.depth = b, 0, 0
	defer catch(&err)
	v.XdrMarshal(d, "")
	if d.off != len(d.b) {
		return fmt.Errorf("%d bytes left over", len(d.b)-d.off)
	}
	return nil
}

// AppendXDR appends the RFC 4506 encoding of v to b. A value out of its declared
// bounds (a string<8> of 9 bytes, a vector over its bound, a union with an
// undeclared discriminant) is an error matching ipc.ErrInvalid.
func AppendXDR(b []byte, v Value) ([]byte, error) {
	if v == nil {
		return b, invalid("xdr encode", "", "nil value")
	}
	e := encoder{b: b}
	if err := e.appendValue(v); err != nil {
		return b, invalid("xdr encode", typeName(v), "%v", err)
	}
	return e.b, nil
}

// UnmarshalXDR decodes v from b, which must hold exactly one encoding of v. Invalid
// data (short, over a bound, an undeclared enum or union value, non-zero padding,
// trailing bytes) is an error matching ErrProtocol, found before anything is
// allocated for the offending item. Opaque<> fields already in v are reused as
// buffers.
func UnmarshalXDR(b []byte, v Value) error {
	if v == nil || nilValue(v) {
		return invalid("xdr decode", "", "nil value")
	}
	var d decoder
	if err := d.decodeValue(b, v); err != nil {
		return opErr("xdr decode", typeName(v), protoErr("%v", err))
	}
	return nil
}
