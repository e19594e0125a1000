// CoreDNS with only the plugins the real node's cluster DNS needs: Services and pods of the cluster
// from the kubernetes plugin, everything else forwarded to the host's resolver.
package main

import (
	"log"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

// The plugins run in this order, which is the order of CoreDNS's own plugin.cfg.
var directives = []string{"bind", "errors", "cache", "kubernetes", "forward"}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		log.Fatal(err)
	}
	coremain.Run()
}
