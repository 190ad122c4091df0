/* flow_event.h - the one event struct shared by bpf/flowtrace.c and exporter/events.py.
 *
 * MUST MATCH BYTE FOR BYTE exporter/events.py FLOW_EVENT (struct format
 * "<QQQQ16s16sIIHHBB2x64s", 144 bytes); tests/unit/test_exporter_units.py decodes a
 * hand-annotated golden byte string. Little-endian (x86-64). IPs are 16 bytes, IPv4
 * stored IPv4-mapped (::ffff:a.b.c.d), so IPv4 and IPv6 share one code path.
 */
#ifndef FLOWATTR_FLOW_EVENT_H
#define FLOWATTR_FLOW_EVENT_H

#define FLOWATTR_WORKLOAD_LEN 64

/* Enum values of schemas/flowattr.proto, spelled once here for the BPF side; a test
 * (tests/unit/test_exporter_units.py) checks them against the generated protobuf code. */
#define FLOWATTR_DIRECTION_OUTBOUND 1    /* FLOW_DIRECTION_OUTBOUND: local side connected */
#define FLOWATTR_DIRECTION_INBOUND 2     /* FLOW_DIRECTION_INBOUND: local side accepted */
#define FLOWATTR_ATTRIBUTION_IP_MAP 2    /* LOCAL_ATTRIBUTION_IP_MAP */
#define FLOWATTR_ATTRIBUTION_PORT_MAP 3  /* LOCAL_ATTRIBUTION_PORT_MAP */
#define FLOWATTR_ATTRIBUTION_UNKNOWN 4   /* LOCAL_ATTRIBUTION_UNKNOWN */

struct flow_event {
    __u64 start_ns;        /* offset 0: CLOCK_MONOTONIC ns at connect (SYN_SENT) or accept */
    __u64 end_ns;          /* offset 8: CLOCK_MONOTONIC ns at close (-> TCP_CLOSE) */
    __u64 bytes_sent;      /* offset 16: payload bytes sent and acked (tcp_sock.bytes_acked - SYN/FIN) */
    __u64 bytes_received;  /* offset 24: payload bytes received (tcp_sock.bytes_received - FIN) */
    __u8  local_ip[16];    /* offset 32 */
    __u8  remote_ip[16];   /* offset 48 */
    __u32 srtt_us;         /* offset 64: tcp_sock.srtt_us >> 3, microseconds */
    __u32 retransmits;     /* offset 68: tcp_sock.total_retrans */
    __u16 local_port;      /* offset 72: host byte order */
    __u16 remote_port;     /* offset 74: host byte order */
    __u8  direction;       /* offset 76: 1 outbound (connect), 2 inbound (accept) */
    __u8  attribution;     /* offset 77: 2 IP map, 3 port map, 4 unknown (LocalAttribution) */
    __u8  pad[2];          /* offset 78 */
    char  workload[FLOWATTR_WORKLOAD_LEN]; /* offset 80: NUL-padded workload name, "" if unknown */
};                         /* 144 bytes */

/* Key of the IP map: the local IP (16 bytes, IPv4-mapped). */
struct ip_key {
    __u8 ip[16];
};

/* Key of the translated-socket map: (local IPv4 in network order, local port host order). */
struct port_key {
    __u32 ipv4;
    __u16 port;
    __u16 pad;
};

struct workload_name {
    char name[FLOWATTR_WORKLOAD_LEN];
};

#endif
