module github.com/ipclab/ipclab

go 1.26.0

require (
	github.com/cilium/ebpf v0.22.0
	github.com/stretchr/testify v1.12.1
	github.com/xdrpp/goxdr v0.1.1
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect

tool (
	github.com/cilium/ebpf/cmd/bpf2go
	github.com/xdrpp/goxdr/cmd/goxdr
)
