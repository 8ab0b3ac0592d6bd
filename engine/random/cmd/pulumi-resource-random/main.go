// pulumi-resource-random: the bridged provider, serving the schema pulumi-tfgen-random generated.
package main

import (
	"context"
	_ "embed"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"tenantonboarding.local/engine/random/provider"
)

//go:embed schema.json
var schema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	pf.Main(context.Background(), "random", provider.Provider(),
		pf.ProviderMetadata{PackageSchema: schema, BridgeMetadata: metadata})
}
