package dotsserver

import piondtls "github.com/pion/dtls/v3"

// keyLogDTLS is the pion option that writes DTLS secrets to
// Options.KeyLogWriter, none when it is nil. TLS takes it in tlsConfig.
func (s *Server) keyLogDTLS() []piondtls.ServerOption {
	if s.opts.KeyLogWriter == nil {
		return nil
	}
	return []piondtls.ServerOption{piondtls.WithKeyLogWriter(s.opts.KeyLogWriter)}
}
