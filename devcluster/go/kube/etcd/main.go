// Command etcd is the etcd server, built from the etcd module that the pinned Kubernetes
// release depends on (so the API server and its storage are a tested pair).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
