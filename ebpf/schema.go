package ebpf

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the documents WriteJSON writes.
//
//go:embed schema.json
var Schema []byte
