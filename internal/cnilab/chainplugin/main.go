// Command chainplugin is a CNI plugin for tests that stands for a distribution's older chained
// plugin (Debian's portmap 1.1.1): it speaks CNI 1.0.0 only, so skel refuses any other
// cniVersion for ADD, DEL and CHECK as the real one does. ADD passes the previous result on,
// or fails while a file named like the binary plus ".fail" exists; DEL always succeeds.
package main

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

func failing() bool {
	self, err := os.Executable()
	if err != nil {
		return true
	}
	_, err = os.Stat(self + ".fail")
	return err == nil
}

func add(args *skel.CmdArgs) error {
	conf := &types.NetConf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "chainplugin: "+err.Error(), "")
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return err
	}
	if failing() {
		return types.NewError(types.ErrInternal, "chainplugin: failing on purpose", "")
	}
	if conf.PrevResult == nil {
		return errors.New("chainplugin: no prevResult")
	}
	res, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return err
	}
	return types.PrintResult(res, conf.CNIVersion)
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:   add,
		Del:   func(*skel.CmdArgs) error { return nil },
		Check: func(*skel.CmdArgs) error { return nil },
	}, version.PluginSupports("1.0.0"), "chainplugin: a 1.0.0-only chained plugin for weft's tests")
}
