// Command etcd is etcd's own server, etcdmain.Main from go.etcd.io/etcd/server/v3. etcd's main package lives in
// its root module (go.etcd.io/etcd/v3), whose go.mod replaces its sibling modules with local folders, so it
// cannot be built as a dependency; this is the same main, over the published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
