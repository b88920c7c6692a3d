package rpc

// binding is one registration with rpcbind, undone by Server.Close.
type binding struct{}

// unsetAll undoes registrations with rpcbind.
func unsetAll([]binding) error { return nil }
