package rpc

// SetFaultPoint makes the server call f at its fault points (see testFaultPoint).
func SetFaultPoint(f func(name string)) { testFaultPoint = f }

// DecodeRecordForTest decodes one durable log record.
var DecodeRecordForTest = decodeRecord
