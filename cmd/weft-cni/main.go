// Command weft-cni is weft's CNI plugin (package cni): a container runtime runs it from its
// CNI bin directory; `weft cni install` puts it there with a conflist.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/internal/version"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.VersionInfo, cni.About+" "+version.String())
}
