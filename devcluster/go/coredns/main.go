// CoreDNS for the dev cluster's `*coredns*` images: the release the conformance suite's
// image names, with only the plugins its Corefile uses (the upstream main imports every
// plugin, cloud SDKs included).
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() {
	coremain.Run()
}
