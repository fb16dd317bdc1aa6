package dots

// KeyNames maps the DOTS signal channel CBOR keys (RFC 9132 Table 5 and
// RFC 9133 §5) to their YANG/JSON names.
var KeyNames = map[uint64]string{
	1: "ietf-dots-signal-channel:mitigation-scope", 2: "scope", 3: "cdid", 4: "cuid", 5: "mid",
	6: "target-prefix", 7: "target-port-range", 8: "lower-port", 9: "upper-port", 10: "target-protocol",
	11: "target-fqdn", 12: "target-uri", 13: "alias-name", 14: "lifetime", 15: "mitigation-start",
	16: "status", 17: "conflict-information", 18: "conflict-status", 19: "conflict-cause", 20: "retry-timer",
	21: "conflict-scope", 22: "acl-list", 23: "acl-name", 24: "acl-type", 25: "bytes-dropped",
	26: "bps-dropped", 27: "pkts-dropped", 28: "pps-dropped", 29: "attack-status",
	30: "ietf-dots-signal-channel:signal-config", 31: "sid", 32: "mitigating-config",
	33: "heartbeat-interval", 34: "max-value", 35: "min-value", 36: "current-value",
	37: "missing-hb-allowed", 38: "max-retransmit", 39: "ack-timeout", 40: "ack-random-factor",
	41: "max-value-decimal", 42: "min-value-decimal", 43: "current-value-decimal", 44: "idle-config",
	45: "trigger-mitigation", 46: "ietf-dots-signal-channel:redirected-signal", 47: "alt-server",
	48: "alt-server-record", 49: "ietf-dots-signal-channel:heartbeat", 50: "probing-rate",
	51: "peer-hb-status", 52: "activation-type", 53: "ietf-dots-signal-control:acl-list",
}

// ComprehensionRequired reports whether an unknown key in this range must
// make the request fail (RFC 9132 §10.6.1.1): 1–127 and 256–16383.
func ComprehensionRequired(key uint64) bool {
	return (key >= 1 && key <= 127) || (key >= 256 && key <= 16383) || key == 0
}

// KeyName returns the JSON name of a key, or "key N" when unknown.
func KeyName(key uint64) string {
	if n, ok := KeyNames[key]; ok {
		return n
	}
	return "key " + uitoa(key)
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
