/*
 * datagram.c — create_datagram_endpoint and the UDP transport
 * (selector_events._SelectorDatagramTransport, base_events.
 * create_datagram_endpoint).
 *
 * Where we differ on purpose: completion-based, so one RECVMSG is kept in
 * flight instead of reading on readiness, and sendto never tries the
 * syscall inline; datagrams queue and go out one SENDMSG at a time.
 * The transport holds a reference for each operation in flight and each
 * scheduled callback, so it outlives them; the socket is closed once the
 * last operation has completed.
 */
#include "io_internal.h"

#include <casyncio/datagram.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DGRAM_DEFAULT_MAX_SIZE (256 * 1024)

typedef struct dgram_node {
    struct dgram_node *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;           /* 0: the connected peer */
    size_t len;
    uint8_t data[];
} dgram_node;

struct ca_datagram_transport {
    ca_object ob_base;
    ca_loop *loop;               /* strong */
    ca_datagram_protocol *protocol; /* owned until released */
    int fd;
    bool connected;
    bool closing;
    bool made;                   /* connection_made ran */
    bool lost_scheduled;
    bool delivering;             /* a received datagram waits for datagram_received */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    /* receiving */
    ca_io_op rop;
    struct msghdr rmsg;
    struct iovec riov;
    struct sockaddr_storage raddr;
    uint8_t *rbuf;
    size_t max_size;
    int32_t rres;                /* the completed receive, waiting for delivery */
    /* sending */
    ca_io_op sop;
    struct msghdr smsg;
    struct iovec siov;
    dgram_node *q_head, *q_tail;
    size_t buffer_size;
    ca_error *pending_error;     /* the latest failure, waiting for error_received */
    ca_io_idle finish;           /* closing: waits for the socket's operations to end */
};

static void dgram_dealloc(ca_object *op);
const ca_type ca_DatagramTransportType = {"_SelectorDatagramTransport", sizeof(ca_datagram_transport), dgram_dealloc,
                                          NULL};


static void dgram_report(ca_loop *loop, const char *message, ca_error *exc) {
    ca_exception_context c = {.message = message, .exception = exc};
    ca_loop_call_exception_handler(loop, &c);
}

static void dgram_queue_clear(ca_datagram_transport *t) {
    while (t->q_head != NULL) {
        dgram_node *n = t->q_head;
        t->q_head = n->next;
        ca_free(n);
    }
    t->q_tail = NULL;
    t->buffer_size = 0;
}

static void dgram_release_protocol(ca_datagram_transport *t) {
    ca_datagram_protocol *p = t->protocol;
    t->protocol = NULL;
    if (p != NULL && p->ops->release != NULL) p->ops->release(p);
}

static void dgram_close_fd(ca_datagram_transport *t) {
    if (t->fd < 0) return;
    ca_io_close_when_idle(t->loop, t->fd);
    t->fd = -1;
}

static void dgram_dealloc(ca_object *op) {
    ca_datagram_transport *t = (ca_datagram_transport *)op;
    dgram_close_fd(t);
    dgram_queue_clear(t);
    CA_CLEAR(t->pending_error);
    dgram_release_protocol(t);
    ca_free(t->rbuf);
    ca_decref(t->loop);
    ca_free(t);
}

/* MARK: - Closing */

static void dgram_call_connection_lost(void *arg) {
    ca_datagram_transport *t = arg;
    ca_datagram_protocol *p = t->protocol;
    if (t->made && p != NULL && p->ops->connection_lost != NULL) {
        ca_error *err = p->ops->connection_lost(p, NULL);
        if (err != NULL) {
            dgram_report(t->loop, "Exception in protocol.connection_lost()", err);
            ca_decref(err);
        }
    }
    dgram_release_protocol(t);
}

/* Nothing is in flight on the socket any more: close it and schedule
 * connection_lost (_call_connection_lost). */
static void dgram_finish(ca_io_idle *w, ca_loop *loop, int fd) {
    ca_datagram_transport *t = CA_CONTAINER_OF(w, ca_datagram_transport, finish);
    dgram_close_fd(t);
    if (!loop->closed) {
        ca_error *err = ca_loop_call_soon(loop, dgram_call_connection_lost, ca_incref(t), ca_release_object, NULL, NULL);
        if (err != NULL) {
            dgram_report(loop, "Cannot schedule connection_lost", err);
            ca_decref(err);
        }
    }
    ca_decref(t); /* the wait's */
}

/** Once closing and every datagram went out: finishes when the socket's
 *  last operation has ended. */
static void dgram_maybe_finish(ca_datagram_transport *t) {
    if (!t->closing || t->lost_scheduled || t->q_head != NULL) return;
    t->lost_scheduled = true;
    ca_incref(t); /* the wait's */
    ca_io_when_idle(t->loop, t->fd, &t->finish, dgram_finish);
}

/* MARK: - Errors to error_received */

static void dgram_call_error_received(void *arg) {
    ca_datagram_transport *t = arg;
    ca_error *exc = t->pending_error;
    t->pending_error = NULL;
    ca_datagram_protocol *p = t->protocol;
    if (exc != NULL && p != NULL && p->ops->error_received != NULL) {
        ca_error *err = p->ops->error_received(p, exc);
        if (err != NULL) {
            dgram_report(t->loop, "Exception in protocol.error_received()", err);
            ca_decref(err);
        }
    }
    ca_decref(exc);
}

/** Schedules error_received(exc) (taken). A report still waiting is
 *  replaced: the protocol hears of the latest failure. */
static void dgram_error(ca_datagram_transport *t, ca_error *exc) {
    bool scheduled = t->pending_error != NULL;
    CA_CLEAR(t->pending_error);
    t->pending_error = exc;
    if (scheduled || t->loop->closed) return;
    ca_error *err = ca_loop_call_soon(t->loop, dgram_call_error_received, ca_incref(t), ca_release_object, NULL, NULL);
    if (err != NULL) ca_decref(err);
}

/* MARK: - Receiving */

static void dgram_arm_recv(ca_datagram_transport *t) {
    if (t->closing || t->delivering || t->rop.state != CA_IO_OP_IDLE || t->loop->closed) return;
    t->riov = (struct iovec){t->rbuf, t->max_size};
    t->rmsg = (struct msghdr){.msg_name = &t->raddr, .msg_namelen = sizeof t->raddr, .msg_iov = &t->riov,
                              .msg_iovlen = 1};
    t->rop.opcode = CA_IO_RECVMSG;
    t->rop.buf = &t->rmsg;
    t->rop.len = t->max_size > UINT32_MAX ? UINT32_MAX : (uint32_t)t->max_size;
    t->rop.flags = 0;
    ca_incref(t);
    ca_io_submit(t->loop, &t->rop);
}

static void dgram_deliver(void *arg) {
    ca_datagram_transport *t = arg;
    t->delivering = false;
    ca_datagram_protocol *p = t->protocol;
    if (!t->closing && p != NULL && p->ops->datagram_received != NULL) {
        ca_error *err = p->ops->datagram_received(p, t->rbuf, (size_t)t->rres, (struct sockaddr *)&t->raddr,
                                                  t->rmsg.msg_namelen);
        if (err != NULL) {
            dgram_report(t->loop, "Exception in protocol.datagram_received()", err);
            ca_decref(err);
        }
    }
    dgram_arm_recv(t);
    dgram_maybe_finish(t);
}

static void dgram_recv_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    ca_datagram_transport *t = CA_CONTAINER_OF(op, ca_datagram_transport, rop);
    if (t->loop->closed || t->closing) {
        dgram_maybe_finish(t);
        ca_decref(t);
        return;
    }
    if (res >= 0) {
        t->rres = res;
        t->delivering = true;
        ca_error *err = ca_loop_call_soon(t->loop, dgram_deliver, ca_incref(t), ca_release_object, NULL, NULL);
        if (err != NULL) {
            t->delivering = false;
            dgram_report(t->loop, "Cannot schedule datagram_received", err);
            ca_decref(err);
        }
    } else {
        if (!ca_io_transient(res) && res != -ECANCELED) dgram_error(t, ca_error_from_io(-res, "recvfrom"));
        dgram_arm_recv(t);
    }
    ca_decref(t);
}

/* MARK: - Sending */

static void dgram_send_next(ca_datagram_transport *t) {
    if (t->sop.state != CA_IO_OP_IDLE || t->q_head == NULL || t->loop->closed || t->fd < 0) return;
    dgram_node *n = t->q_head;
    t->siov = (struct iovec){n->data, n->len};
    t->smsg = (struct msghdr){.msg_name = n->addrlen ? &n->addr : NULL, .msg_namelen = n->addrlen,
                              .msg_iov = &t->siov, .msg_iovlen = 1};
    t->sop.opcode = CA_IO_SENDMSG;
    t->sop.buf = &t->smsg;
    t->sop.len = n->len > UINT32_MAX ? UINT32_MAX : (uint32_t)n->len;
    t->sop.flags = 0;
    ca_incref(t);
    ca_io_submit(t->loop, &t->sop);
}

static void dgram_send_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    ca_datagram_transport *t = CA_CONTAINER_OF(op, ca_datagram_transport, sop);
    if (t->loop->closed) {
        ca_decref(t);
        return;
    }
    if (ca_io_transient(res)) {
        dgram_send_next(t); /* the same datagram again */
        ca_decref(t);
        return;
    }
    dgram_node *n = t->q_head;
    if (n != NULL) {
        t->q_head = n->next;
        if (t->q_head == NULL) t->q_tail = NULL;
        t->buffer_size -= n->len;
        ca_free(n);
    }
    /* _SelectorDatagramTransport._sendto_ready: an OSError goes to
     * error_received and the next datagram is tried */
    if (res < 0 && res != -ECANCELED) dgram_error(t, ca_error_from_io(-res, "sendto"));
    dgram_send_next(t);
    dgram_maybe_finish(t);
    ca_decref(t);
}

ca_error *ca_datagram_transport_sendto(ca_datagram_transport *t, const void *data, size_t len,
                                       const struct sockaddr *addr, socklen_t addrlen) {
    if (addr != NULL && t->connected &&
        (addrlen != t->peerlen || memcmp(addr, &t->peer, addrlen) != 0)) {
        char a[160];
        ca_io_format_addr((const struct sockaddr *)&t->peer, t->peerlen, a, sizeof a);
        return ca_error_format(&ca_ValueError, "Invalid address: must be None or %s", a);
    }
    if (addr == NULL && !t->connected) return ca_error_new(&ca_ValueError, "sendto() needs an address: the endpoint is not connected");
    if (addr != NULL && addrlen > sizeof(struct sockaddr_storage)) return ca_error_new(&ca_ValueError, "invalid socket address");
    if (t->closing) return NULL; /* asyncio drops (and counts) writes after close */
    dgram_node *n = ca_malloc(sizeof *n + (len ? len : 1));
    if (n == NULL) return ca_error_new(&ca_MemoryError, NULL);
    n->next = NULL;
    n->addrlen = t->connected ? 0 : addrlen;
    if (n->addrlen) memcpy(&n->addr, addr, addrlen);
    n->len = len;
    if (len) memcpy(n->data, data, len);
    if (t->q_tail) t->q_tail->next = n;
    else t->q_head = n;
    t->q_tail = n;
    t->buffer_size += len;
    dgram_send_next(t);
    return NULL;
}

/* MARK: - Closing */

void ca_datagram_transport_close(ca_datagram_transport *t) {
    if (t->closing) return;
    t->closing = true;
    ca_io_cancel(t->loop, &t->rop);
    dgram_maybe_finish(t);
}

void ca_datagram_transport_abort(ca_datagram_transport *t) {
    t->closing = true;
    /* keep the datagram in flight (the kernel may be reading it); drop the rest */
    dgram_node *keep = t->sop.state != CA_IO_OP_IDLE ? t->q_head : NULL;
    if (keep != NULL) {
        dgram_node *rest = keep->next;
        keep->next = NULL;
        t->q_tail = keep;
        t->buffer_size = keep->len;
        while (rest != NULL) {
            dgram_node *n = rest->next;
            ca_free(rest);
            rest = n;
        }
    } else {
        dgram_queue_clear(t);
    }
    ca_io_cancel(t->loop, &t->rop);
    ca_io_cancel(t->loop, &t->sop);
    dgram_maybe_finish(t);
}

bool ca_datagram_transport_is_closing(const ca_datagram_transport *t) { return t->closing; }
size_t ca_datagram_transport_get_write_buffer_size(const ca_datagram_transport *t) { return t->buffer_size; }
int ca_datagram_transport_get_fd(const ca_datagram_transport *t) { return t->fd; }
ca_datagram_protocol *ca_datagram_transport_get_protocol(const ca_datagram_transport *t) { return t->protocol; }

bool ca_datagram_transport_get_sockname(const ca_datagram_transport *t, struct sockaddr_storage *addr,
                                        socklen_t *len) {
    if (t->fd < 0) return false;
    *len = sizeof *addr;
    return getsockname(t->fd, (struct sockaddr *)addr, len) == 0;
}

bool ca_datagram_transport_get_peername(const ca_datagram_transport *t, struct sockaddr_storage *addr,
                                        socklen_t *len) {
    if (t->fd < 0 || !t->connected) return false;
    memcpy(addr, &t->peer, t->peerlen);
    *len = t->peerlen;
    return true;
}

/* MARK: - create_datagram_endpoint */

static void dgram_start(void *arg) {
    ca_datagram_transport *t = arg;
    ca_datagram_protocol *p = t->protocol;
    /* as in asyncio, connection_made comes first even when close() was
     * called meanwhile: connection_lost, scheduled later, follows it */
    t->made = true;
    if (p != NULL && p->ops->connection_made != NULL) {
        ca_error *err = p->ops->connection_made(p, t);
        if (err != NULL) {
            dgram_report(t->loop, "Exception in protocol.connection_made()", err);
            ca_decref(err);
            ca_datagram_transport_abort(t);
            return;
        }
    }
    dgram_arm_recv(t);
}

/** Resolves one numeric address; ValueError for a name. */
static ca_error *dgram_resolve(const char *host, uint16_t port, bool passive, int family,
                               struct sockaddr_storage *addr, socklen_t *len) {
    struct sockaddr_storage addrs[4];
    socklen_t lens[4];
    size_t n = 0;
    ca_error *err = ca_io_resolve_numeric(host, port, passive, addrs, lens, 4, &n);
    if (err != NULL) return err;
    for (size_t i = 0; i < n; i++) {
        if (family != AF_UNSPEC && addrs[i].ss_family != family) continue;
        memcpy(addr, &addrs[i], lens[i]);
        *len = lens[i];
        return NULL;
    }
    return ca_error_format(&ca_ValueError, "no address of the endpoint's family for %s", host);
}

static ca_error *dgram_os_error(int err_no, const char *what, const struct sockaddr_storage *addr, socklen_t len) {
    char a[160], msg[220];
    ca_io_format_addr((const struct sockaddr *)addr, len, a, sizeof a);
    snprintf(msg, sizeof msg, "%s %s", what, a);
    return ca_error_from_io(err_no, msg);
}

ca_error *ca_loop_create_datagram_endpoint(ca_loop *loop, ca_datagram_protocol *protocol,
                                           const ca_datagram_endpoint_options *opts, ca_datagram_transport **out) {
    *out = NULL;
    ca_datagram_endpoint_options o = opts ? *opts : (ca_datagram_endpoint_options){0};
    struct sockaddr_storage local, remote;
    socklen_t local_len = 0, remote_len = 0;
    int family = o.family;
    ca_error *err = NULL;
    int fd = -1;
    if (loop->closed) err = ca_error_new(&ca_RuntimeError, "Event loop is closed");
    else if (protocol == NULL) err = ca_error_new(&ca_ValueError, "a protocol is required");
    else if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        err = ca_error_format(&ca_ValueError, "unexpected address family %d", family);
    else if (o.local_host == NULL && o.remote_host == NULL && family == AF_UNSPEC)
        err = ca_error_new(&ca_ValueError, "unexpected address family");
    else if (ca_io_loop_get(loop) == NULL) err = ca_error_new(&ca_MemoryError, NULL);
    if (err == NULL && o.remote_host != NULL) {
        err = dgram_resolve(o.remote_host, o.remote_port, false, family, &remote, &remote_len);
        if (err == NULL) family = remote.ss_family;
    }
    if (err == NULL && o.local_host != NULL) {
        err = dgram_resolve(o.local_host, o.local_port, true, family, &local, &local_len);
        if (err == NULL) family = local.ss_family;
    }
    if (err == NULL) {
        fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) err = ca_error_from_io(errno, "socket");
    }
    if (err == NULL && o.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &(int){1}, sizeof(int)) < 0)
        err = ca_error_from_io(errno, "setsockopt(SO_REUSEPORT)");
    if (err == NULL && o.allow_broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &(int){1}, sizeof(int)) < 0)
        err = ca_error_from_io(errno, "setsockopt(SO_BROADCAST)");
    if (err == NULL && local_len > 0 && bind(fd, (struct sockaddr *)&local, local_len) < 0)
        err = dgram_os_error(errno, "error while attempting to bind on address", &local, local_len);
    if (err == NULL && remote_len > 0 && connect(fd, (struct sockaddr *)&remote, remote_len) < 0)
        err = dgram_os_error(errno, "Connect call failed", &remote, remote_len);
    ca_datagram_transport *t = NULL;
    if (err == NULL) {
        t = ca_calloc(1, sizeof *t);
        size_t max_size = o.max_size ? o.max_size : DGRAM_DEFAULT_MAX_SIZE;
        uint8_t *rbuf = t != NULL ? ca_malloc(max_size) : NULL;
        if (rbuf == NULL) {
            ca_free(t);
            t = NULL;
            err = ca_error_new(&ca_MemoryError, NULL);
        } else {
            ca_object_init(t, &ca_DatagramTransportType);
            t->loop = ca_incref(loop);
            t->protocol = protocol;
            t->fd = fd;
            t->rbuf = rbuf;
            t->max_size = max_size;
            t->rop.fd = t->sop.fd = fd;
            t->rop.complete = dgram_recv_complete;
            t->sop.complete = dgram_send_complete;
            if (remote_len > 0) {
                t->connected = true;
                memcpy(&t->peer, &remote, remote_len);
                t->peerlen = remote_len;
            }
            err = ca_loop_call_soon(loop, dgram_start, ca_incref(t), ca_release_object, NULL, NULL);
            if (err != NULL) {
                ca_decref(t); /* closes the socket and releases the protocol */
                return err;
            }
        }
    }
    if (err != NULL) {
        if (fd >= 0) close(fd);
        if (protocol != NULL && protocol->ops->release != NULL) protocol->ops->release(protocol);
        return err;
    }
    *out = t;
    return NULL;
}
