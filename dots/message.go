package dots

// Message is one DOTS signal-channel body. Exactly one of its containers is
// set in a well-formed message (RFC 9132 §6: the top-level map holds one of
// keys 1, 30, 46 or 49).
type Message struct {
	MitigationScope  *MitigationScope  `cbor:"1,keyasint,omitempty" json:"ietf-dots-signal-channel:mitigation-scope,omitempty"`
	SignalConfig     *SignalConfig     `cbor:"30,keyasint,omitempty" json:"ietf-dots-signal-channel:signal-config,omitempty"`
	RedirectedSignal *RedirectedSignal `cbor:"46,keyasint,omitempty" json:"ietf-dots-signal-channel:redirected-signal,omitempty"`
	Heartbeat        *Heartbeat        `cbor:"49,keyasint,omitempty" json:"ietf-dots-signal-channel:heartbeat,omitempty"`
}

// MitigationScope is the mitigation-scope container (RFC 9132 §4.4.1).
type MitigationScope struct {
	Scope []Scope `cbor:"2,keyasint,omitempty" json:"scope,omitempty"`
}

// Scope is one entry of the scope list: a request when sent by a client, a
// status when sent by a server (RFC 9132 §4.4.1, §4.4.2).
type Scope struct {
	MID                 *uint32              `cbor:"5,keyasint,omitempty" json:"mid,omitempty"`
	TargetPrefix        []string             `cbor:"6,keyasint,omitempty" json:"target-prefix,omitempty"`
	TargetPortRange     []PortRange          `cbor:"7,keyasint,omitempty" json:"target-port-range,omitempty"`
	TargetProtocol      []uint32             `cbor:"10,keyasint,omitempty" json:"target-protocol,omitempty"`
	TargetFQDN          []string             `cbor:"11,keyasint,omitempty" json:"target-fqdn,omitempty"`
	TargetURI           []string             `cbor:"12,keyasint,omitempty" json:"target-uri,omitempty"`
	AliasName           []string             `cbor:"13,keyasint,omitempty" json:"alias-name,omitempty"`
	Lifetime            *int64               `cbor:"14,keyasint,omitempty" json:"lifetime,omitempty"`
	MitigationStart     *U64                 `cbor:"15,keyasint,omitempty" json:"mitigation-start,omitempty"`
	Status              *Status              `cbor:"16,keyasint,omitempty" json:"status,omitempty"`
	ConflictInformation *ConflictInformation `cbor:"17,keyasint,omitempty" json:"conflict-information,omitempty"`
	BytesDropped        *U64                 `cbor:"25,keyasint,omitempty" json:"bytes-dropped,omitempty"`
	BpsDropped          *U64                 `cbor:"26,keyasint,omitempty" json:"bps-dropped,omitempty"`
	PktsDropped         *U64                 `cbor:"27,keyasint,omitempty" json:"pkts-dropped,omitempty"`
	PpsDropped          *U64                 `cbor:"28,keyasint,omitempty" json:"pps-dropped,omitempty"`
	AttackStatus        *AttackStatus        `cbor:"29,keyasint,omitempty" json:"attack-status,omitempty"`
	TriggerMitigation   *bool                `cbor:"45,keyasint,omitempty" json:"trigger-mitigation,omitempty"`
	ACLList             []ACLControl         `cbor:"53,keyasint,omitempty" json:"ietf-dots-signal-control:acl-list,omitempty"`
	// Note is Levee's plain-text remark on the mitigation (e.g. that no
	// mitigator is configured). Key 49152 is in the private-use range, which
	// RFC 9132 §10.6.1.1 makes comprehension-optional: other clients ignore it.
	Note string `cbor:"49152,keyasint,omitempty" json:"levee:note,omitempty"`
	// Countermeasure is a Levee client's wish for how to mitigate ("rtbh",
	// "flowspec", "scrubbing"); the server grants it only where its policy
	// allows. Private-use key 49153, comprehension-optional.
	Countermeasure string `cbor:"49153,keyasint,omitempty" json:"levee:countermeasure,omitempty"`
}

// PortRange is one target-port-range entry; UpperPort absent means a single port.
type PortRange struct {
	LowerPort uint16  `cbor:"8,keyasint" json:"lower-port"`
	UpperPort *uint16 `cbor:"9,keyasint,omitempty" json:"upper-port,omitempty"`
}

// ACLControl is one RFC 9133 acl-list entry of a mitigation request.
type ACLControl struct {
	ACLName        string          `cbor:"23,keyasint,omitempty" json:"acl-name,omitempty"`
	ActivationType *ActivationType `cbor:"52,keyasint,omitempty" json:"activation-type,omitempty"`
}

// ConflictInformation is RFC 9132 §4.4.1.3 conflict-information.
type ConflictInformation struct {
	ConflictStatus *ConflictStatus `cbor:"18,keyasint,omitempty" json:"conflict-status,omitempty"`
	ConflictCause  *ConflictCause  `cbor:"19,keyasint,omitempty" json:"conflict-cause,omitempty"`
	RetryTimer     *uint32         `cbor:"20,keyasint,omitempty" json:"retry-timer,omitempty"`
	ConflictScope  *ConflictScope  `cbor:"21,keyasint,omitempty" json:"conflict-scope,omitempty"`
}

// ConflictScope names what a request conflicts with.
type ConflictScope struct {
	MID             *uint32     `cbor:"5,keyasint,omitempty" json:"mid,omitempty"`
	TargetPrefix    []string    `cbor:"6,keyasint,omitempty" json:"target-prefix,omitempty"`
	TargetPortRange []PortRange `cbor:"7,keyasint,omitempty" json:"target-port-range,omitempty"`
	TargetProtocol  []uint32    `cbor:"10,keyasint,omitempty" json:"target-protocol,omitempty"`
	TargetFQDN      []string    `cbor:"11,keyasint,omitempty" json:"target-fqdn,omitempty"`
	TargetURI       []string    `cbor:"12,keyasint,omitempty" json:"target-uri,omitempty"`
	AliasName       []string    `cbor:"13,keyasint,omitempty" json:"alias-name,omitempty"`
	ACLList         []ACLRef    `cbor:"22,keyasint,omitempty" json:"acl-list,omitempty"`
}

// ACLRef names an ACL in conflict-scope.
type ACLRef struct {
	ACLName string `cbor:"23,keyasint,omitempty" json:"acl-name,omitempty"`
	ACLType string `cbor:"24,keyasint,omitempty" json:"acl-type,omitempty"`
}

// SignalConfig is the signal-config container of RFC 9132 §4.5.
type SignalConfig struct {
	SID              *uint32    `cbor:"31,keyasint,omitempty" json:"sid,omitempty"`
	MitigatingConfig *ConfigSet `cbor:"32,keyasint,omitempty" json:"mitigating-config,omitempty"`
	IdleConfig       *ConfigSet `cbor:"44,keyasint,omitempty" json:"idle-config,omitempty"`
}

// ConfigSet is one of mitigating-config and idle-config.
type ConfigSet struct {
	HeartbeatInterval *Uint16Param  `cbor:"33,keyasint,omitempty" json:"heartbeat-interval,omitempty"`
	MissingHBAllowed  *Uint16Param  `cbor:"37,keyasint,omitempty" json:"missing-hb-allowed,omitempty"`
	MaxRetransmit     *Uint16Param  `cbor:"38,keyasint,omitempty" json:"max-retransmit,omitempty"`
	AckTimeout        *DecimalParam `cbor:"39,keyasint,omitempty" json:"ack-timeout,omitempty"`
	AckRandomFactor   *DecimalParam `cbor:"40,keyasint,omitempty" json:"ack-random-factor,omitempty"`
	ProbingRate       *Uint16Param  `cbor:"50,keyasint,omitempty" json:"probing-rate,omitempty"`
}

// Uint16Param carries max/min (server to client only) and current values.
// Keys follow RFC 9132 Table 5: max-value 34, min-value 35.
type Uint16Param struct {
	MaxValue     *uint16 `cbor:"34,keyasint,omitempty" json:"max-value,omitempty"`
	MinValue     *uint16 `cbor:"35,keyasint,omitempty" json:"min-value,omitempty"`
	CurrentValue *uint16 `cbor:"36,keyasint,omitempty" json:"current-value,omitempty"`
}

// DecimalParam is Uint16Param for decimal64 values (keys 41, 42, 43).
type DecimalParam struct {
	MaxValue     *Decimal `cbor:"41,keyasint,omitempty" json:"max-value-decimal,omitempty"`
	MinValue     *Decimal `cbor:"42,keyasint,omitempty" json:"min-value-decimal,omitempty"`
	CurrentValue *Decimal `cbor:"43,keyasint,omitempty" json:"current-value-decimal,omitempty"`
}

// RedirectedSignal is the body of a 5.03 redirection (RFC 9132 §4.6).
type RedirectedSignal struct {
	AltServer       string   `cbor:"47,keyasint,omitempty" json:"alt-server,omitempty"`
	AltServerRecord []string `cbor:"48,keyasint,omitempty" json:"alt-server-record,omitempty"`
}

// Heartbeat is the heartbeat container (RFC 9132 §4.7).
type Heartbeat struct {
	PeerHBStatus *bool `cbor:"51,keyasint,omitempty" json:"peer-hb-status,omitempty"`
}

// Ptr returns a pointer to v; a convenience for building messages.
func Ptr[T any](v T) *T { return &v }
