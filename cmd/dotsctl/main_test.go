package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, dotstest.LeakOptions()...) }
