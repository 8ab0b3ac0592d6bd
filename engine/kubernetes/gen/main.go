// Writes the two files the provider embeds: its schema stamped with the version being built, and the
// terraform mapping, both compacted. Inputs come from the provider module in the module cache.
//
//	VERSION=4.25.0 SRC=<module>/cmd/pulumi-resource-kubernetes DST=../cmd/pulumi-resource-kubernetes go run ./gen
package main

import (
	"encoding/json"
	"log"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	version, src, dst := os.Getenv("VERSION"), os.Getenv("SRC"), os.Getenv("DST")
	if version == "" || src == "" || dst == "" {
		log.Fatal("VERSION, SRC and DST must be set")
	}
	var spec schema.PackageSpec
	readJSON(filepath.Join(src, "schema.json"), &spec)
	spec.Version = version
	writeJSON(filepath.Join(dst, "schema-embed.json"), spec)

	var mapping any
	readJSON(filepath.Join(src, "terraform-mapping.json"), &mapping)
	writeJSON(filepath.Join(dst, "terraform-mapping-embed.json"), mapping)
}

func readJSON(path string, into any) {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(path string, value any) {
	data, err := json.Marshal(value)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
}
