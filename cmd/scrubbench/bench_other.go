//go:build !linux

package main

import (
	"context"
	"fmt"
	"io"
)

func run(_ context.Context, args []string, out io.Writer) error {
	if _, err := parseFlags(args); err != nil {
		return err
	}
	fmt.Fprintln(out, "scrubber drop rate: skipped (needs Linux: network namespaces and nftables)")
	return nil
}
