// pulumi-resource-kubernetes, built from the provider module. The module zip has the provider's schema
// but not the embed files its own main package is generated with, so this package embeds the files
// that ../../gen writes from that schema (see engine/build.sh).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
