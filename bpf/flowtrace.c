/* flowtrace.c - one event per closed TCP socket, with its local workload.
 *
 * Hooks the tracepoint sock:inet_sock_set_state (stable ABI; its arguments are safe on
 * any kernel). A socket's start is remembered when it enters SYN_SENT (connect) or
 * goes SYN_RECV -> ESTABLISHED (accept); when it enters TCP_CLOSE one flow_event is
 * emitted. Byte counts (payload only), retransmits and RTT are read from struct tcp_sock
 * (and sock.sk_flags) at offsets
 * taken from the RUNNING kernel's BTF and passed in as -D constants (OFF_*): the
 * installed headers do not match this kernel, so their offsets would be wrong.
 *
 * Local workload: the translated-socket map (local IPv4, port) wins, then the IP map;
 * both are pinned under /sys/fs/bpf/flowattr and written by the IP-assignment agent
 * (`flowattr ipmap`). Caveats, best effort: sockets that started before the program was
 * loaded are not reported (no start time); a socket's byte counters are read at close.
 */
#include <uapi/linux/ptrace.h>
#include <linux/socket.h>
#include <net/sock.h>
#include "flow_event.h"

#ifndef OFF_BYTES_ACKED
#error "OFF_BYTES_ACKED (tcp_sock.bytes_acked offset from BTF) must be passed with -D"
#endif

#define IPPROTO_TCP_ 6
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_FIN_WAIT2_ 5
#define TCP_CLOSE_ 7
#define TCP_LAST_ACK_ 9
#define TCP_CLOSING_ 11
#define SOCK_DONE_BIT 1  /* enum sock_flags SOCK_DONE: set by tcp_fin() when a FIN is processed */

/* start_info.flags */
#define SYN_ACKED 1   /* outbound socket reached ESTABLISHED: its SYN was acked */
#define FIN_ACKED 2   /* our FIN was acked (passed FIN_WAIT2, or closed from LAST_ACK/CLOSING) */

struct start_info {
    __u64 ts_ns;
    __u8 direction;
    __u8 flags;
};

BPF_HASH(starts, u64, struct start_info, 65536);
BPF_TABLE_PINNED("hash", struct ip_key, struct workload_name, ip_workloads, 65536, "/sys/fs/bpf/flowattr/ip_workloads");
BPF_TABLE_PINNED("hash", struct port_key, struct workload_name, port_workloads, 65536, "/sys/fs/bpf/flowattr/port_workloads");
/* A BPF ring buffer read in bulk by exporter/ringbuf.py (mmap + numpy): no per-event wakeup
 * and no per-event callback into Python. RING_PAGES comes from exporter/probe.py. */
BPF_RINGBUF_OUTPUT(flow_events, RING_PAGES);
BPF_ARRAY(counters, u64, 3);  /* 0: closes without a known start, 1: events submitted, 2: lost (ring full) */

static __always_inline void to_mapped(__u8 *dst, const __u8 *v4) {
    #pragma unroll
    for (int i = 0; i < 10; i++) dst[i] = 0;
    dst[10] = 0xff; dst[11] = 0xff;
    dst[12] = v4[0]; dst[13] = v4[1]; dst[14] = v4[2]; dst[15] = v4[3];
}

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP_)
        return 0;
    u64 sk = (u64)args->skaddr;
    int newstate = args->newstate, oldstate = args->oldstate;

    if (newstate == TCP_SYN_SENT_ || (oldstate == TCP_SYN_RECV_ && newstate == TCP_ESTABLISHED_)) {
        struct start_info info = {};
        info.ts_ns = bpf_ktime_get_ns();
        info.direction = newstate == TCP_SYN_SENT_ ? FLOWATTR_DIRECTION_OUTBOUND : FLOWATTR_DIRECTION_INBOUND;
        starts.update(&sk, &info);
        return 0;
    }
    struct start_info *info = starts.lookup(&sk);
    if (info) {
        if (newstate == TCP_ESTABLISHED_ && info->direction == FLOWATTR_DIRECTION_OUTBOUND)
            info->flags |= SYN_ACKED;
        if (newstate == TCP_FIN_WAIT2_ ||
            (newstate == TCP_CLOSE_ && (oldstate == TCP_LAST_ACK_ || oldstate == TCP_CLOSING_)))
            info->flags |= FIN_ACKED;
    }
    if (newstate != TCP_CLOSE_)
        return 0;
    if (!info) {
        int idx = 0;
        u64 *c = counters.lookup(&idx);
        if (c) __sync_fetch_and_add(c, 1);
        return 0;
    }
    struct flow_event ev = {};
    ev.start_ns = info->ts_ns;
    ev.direction = info->direction;
    __u8 flags = info->flags;
    ev.end_ns = bpf_ktime_get_ns();
    ev.local_port = args->sport;
    ev.remote_port = args->dport;
    if (args->family == AF_INET) {
        to_mapped(ev.local_ip, args->saddr);
        to_mapped(ev.remote_ip, args->daddr);
    } else {
        __builtin_memcpy(ev.local_ip, args->saddr_v6, 16);
        __builtin_memcpy(ev.remote_ip, args->daddr_v6, 16);
    }
    u32 srtt8 = 0;
    bpf_probe_read_kernel(&ev.bytes_sent, sizeof(ev.bytes_sent), (void *)(sk + OFF_BYTES_ACKED));
    bpf_probe_read_kernel(&ev.bytes_received, sizeof(ev.bytes_received), (void *)(sk + OFF_BYTES_RECEIVED));
    bpf_probe_read_kernel(&ev.retransmits, sizeof(ev.retransmits), (void *)(sk + OFF_TOTAL_RETRANS));
    bpf_probe_read_kernel(&srtt8, sizeof(srtt8), (void *)(sk + OFF_SRTT_US));
    ev.srtt_us = srtt8 >> 3;
    /* Payload bytes: bytes_acked and bytes_received also count the SYN and FIN sequence
     * numbers. An outbound socket's acked SYN adds 1 to bytes_acked and our acked FIN adds
     * 1; a FIN processed by this socket (SOCK_DONE, set in tcp_fin()) adds 1 to
     * bytes_received. (sk_shutdown is no signal: close() sets RCV_SHUTDOWN itself, and an
     * orphaned FIN_WAIT2 socket hands the peer's FIN to its timewait socket.) */
    unsigned long flag_bits = 0;  /* not "sk_flags": a macro in the kernel headers */
    bpf_probe_read_kernel(&flag_bits, sizeof(flag_bits), (void *)(sk + OFF_SK_FLAGS));
    __u64 seq_extra = ((flags & SYN_ACKED) ? 1 : 0) + ((flags & FIN_ACKED) ? 1 : 0);
    ev.bytes_sent = ev.bytes_sent >= seq_extra ? ev.bytes_sent - seq_extra : 0;
    if ((flag_bits & (1UL << SOCK_DONE_BIT)) && ev.bytes_received > 0)
        ev.bytes_received -= 1;

    struct workload_name *name = 0;
    if (args->family == AF_INET) {
        struct port_key pk = {};
        __builtin_memcpy(&pk.ipv4, args->saddr, 4);
        pk.port = args->sport;
        name = port_workloads.lookup(&pk);
        if (name) ev.attribution = FLOWATTR_ATTRIBUTION_PORT_MAP;
    }
    if (!name) {
        struct ip_key ik = {};
        __builtin_memcpy(ik.ip, ev.local_ip, 16);
        name = ip_workloads.lookup(&ik);
        if (name) ev.attribution = FLOWATTR_ATTRIBUTION_IP_MAP;
    }
    if (name) {
        bpf_probe_read_kernel(ev.workload, sizeof(ev.workload), name->name);
    } else {
        ev.attribution = FLOWATTR_ATTRIBUTION_UNKNOWN;
    }
    starts.delete(&sk);
    /* BPF_RB_NO_WAKEUP: the exporter polls on a timer, it never sleeps on the ring. */
    int idx = flow_events.ringbuf_output(&ev, sizeof(ev), BPF_RB_NO_WAKEUP) == 0 ? 1 : 2;
    u64 *c = counters.lookup(&idx);
    if (c) __sync_fetch_and_add(c, 1);
    return 0;
}
