package bench

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestVersionOf: the version is the VCS revision when the build is stamped, else the
// module version, else $IPCLAB_VERSION, else "unknown": never empty.
func TestVersionOf(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	stamped := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261204000000-0123456789ab+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	devel := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		env  string
		want string
	}{
		{stamped("false"), "from-env", "0123456789ab"},
		{stamped("true"), "", "0123456789ab-dirty"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "from-env", "v1.2.3"},
		{devel, "v1.2.3-4-gabcdef", "v1.2.3-4-gabcdef"},
		{devel, " v1\n", "v1"},
		{devel, "", "unknown"},
		{nil, "", "unknown"},
		{nil, "from-env", "from-env"},
	} {
		assert.Equal(t, tc.want, versionOf(tc.bi, tc.env))
	}
	assert.NotEmpty(t, version())
}
