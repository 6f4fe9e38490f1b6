package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// applyConfigFile reads a YAML file whose keys are flag names and sets every flag
// the command line did not set, so flags override the file. Unknown keys, and values
// a flag rejects, are errors that name the key.
func applyConfigFile(path string, flags *pflag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s: the top level must be a mapping of setting names to values", path)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		name := k.Value
		f := flags.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config %s line %d: unknown setting %q", path, k.Line, name)
		}
		if f.Changed {
			continue
		}
		val, err := scalarValue(v)
		if err != nil {
			return fmt.Errorf("config %s line %d: setting %q: %w", path, v.Line, name, err)
		}
		if err := flags.Set(name, val); err != nil {
			return fmt.Errorf("config %s line %d: setting %q: %w", path, v.Line, name, err)
		}
	}
	return nil
}

// scalarValue turns a YAML value into the string a flag parses: scalars as they
// are, sequences of scalars joined with commas.
func scalarValue(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("lists may hold only plain values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("must be a plain value or a list")
}
