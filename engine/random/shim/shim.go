// Package shim reaches terraform-provider-random's internal provider package. Go allows that because
// this module's path sits under the provider's own; engine/random/go.mod points the path here.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	internal "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

func New() provider.Provider { return internal.New() }
