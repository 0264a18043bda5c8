// Command etcd is etcd's own server entry point, linked from the same module
// graph as the apiserver so that both agree on the etcd client version. It is
// a separate binary because etcd and Kubernetes register overlapping global
// metrics and flags at init time.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
