/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What bpf_fib_lookup needs that UAPI headers do not give a BPF program: the
 * socket address families (they live in libc's sys/socket.h).
 */
#ifndef XLB_FIB_H
#define XLB_FIB_H

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#endif /* XLB_FIB_H */
