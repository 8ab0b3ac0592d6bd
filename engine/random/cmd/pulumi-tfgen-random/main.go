// pulumi-tfgen-random: generates the provider's Pulumi schema and bridge metadata (build step only).
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"tenantonboarding.local/engine/random/provider"
)

func main() { tfgen.Main("random", provider.Provider()) }
