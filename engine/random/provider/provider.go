// Package provider maps terraform-provider-random onto Pulumi's `random` package, with the tokens the
// published pulumi_random SDK uses (random:index/randomPassword:RandomPassword and so on).
//
// This is not pulumi-random's own provider module (the Go module proxy does not serve it): it is the
// smallest mapping that gives the program's resources the same tokens, inputs and outputs. Resources
// that need extra mapping code upstream are left out rather than half-supported.
package provider

import (
	_ "embed"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Version is stamped at build time: -ldflags "-X tenantonboarding.local/engine/random/provider.Version=...".
var Version = "0.0.0-dev"

// Written by pulumi-tfgen-random; the bridge keeps its own bookkeeping there.
//
//go:embed bridge-metadata.json
var metadata []byte

func Provider() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.New()),
		Name:         "random",
		Version:      Version,
		License:      "Apache-2.0",
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		// random_bytes has no id attribute and random_string needs a state upgrade hook upstream.
		IgnoreMappings:              []string{"random_bytes", "random_string"},
		EnableAccurateBridgePreview: true,
	}
	random := func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", random))
	return info
}
