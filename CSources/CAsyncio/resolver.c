/*
 * resolver.c — loop.getaddrinfo (base_events.getaddrinfo): getaddrinfo(3)
 * on the default executor, with numeric addresses answered on the loop
 * thread (base_events._ipaddr_info), and socket.gaierror.
 */
#include "executor_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

const ca_error_type ca_gaierror = {"gaierror", &ca_OSError};

static void addrinfo_list_dealloc(ca_object *op);
const ca_type ca_AddrInfoListType = {"addrinfo_list", sizeof(ca_addrinfo_list), addrinfo_list_dealloc, NULL};

static void addrinfo_list_dealloc(ca_object *op) {
    ca_addrinfo_list *l = (ca_addrinfo_list *)op;
    for (size_t i = 0; i < l->count; i++) ca_free(l->items[i].canonname);
    ca_free(l->items);
    ca_free(l);
}

ca_error *ca_error_from_gai(int code, int sys_errno) {
    if (code == EAI_SYSTEM) return ca_error_from_io(sys_errno, "getaddrinfo");
    ca_error *err = ca_error_format(&ca_gaierror, "[Errno %d] %s", code, gai_strerror(code));
    if (err->type == &ca_gaierror) err->err_no = code; /* not the MemoryError singleton */
    return err;
}

/** Copies a getaddrinfo result into a new list object. */
static ca_error *addrinfo_list_from(const struct addrinfo *res, ca_addrinfo_list **out) {
    *out = NULL;
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_addrlen <= sizeof(struct sockaddr_storage)) n++;
    ca_addrinfo_list *l = ca_calloc(1, sizeof *l);
    if (l == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_object_init(l, &ca_AddrInfoListType);
    l->items = n > 0 ? ca_calloc(n, sizeof *l->items) : NULL;
    if (n > 0 && l->items == NULL) {
        ca_decref(l);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
        ca_addrinfo *e = &l->items[l->count++];
        e->family = ai->ai_family;
        e->type = ai->ai_socktype;
        e->proto = ai->ai_protocol;
        e->canonname = ai->ai_canonname != NULL ? ca_strdup(ai->ai_canonname) : NULL;
        memcpy(&e->addr, ai->ai_addr, ai->ai_addrlen);
        e->addrlen = ai->ai_addrlen;
    }
    *out = l;
    return NULL;
}

/** What a resolution needs, copied so the caller's strings may go. */
typedef struct gai_request {
    char *host;
    char *port;
    struct addrinfo hints;
} gai_request;

static void gai_request_free(void *arg) {
    gai_request *r = arg;
    ca_free(r->host);
    ca_free(r->port);
    ca_free(r);
}

/** getaddrinfo into a list; gaierror or OSError on failure. Runs on a
 *  worker thread, or on the loop thread for numeric input. */
static ca_error *gai_resolve(const char *host, const char *port, const struct addrinfo *hints, ca_value *result) {
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, hints, &res);
    if (rc != 0) return ca_error_from_gai(rc, errno);
    ca_addrinfo_list *l = NULL;
    ca_error *err = addrinfo_list_from(res, &l);
    freeaddrinfo(res);
    if (err == NULL) *result = ca_obj(l);
    return err;
}

static ca_error *gai_job(void *arg, ca_value *result) {
    gai_request *r = arg;
    return gai_resolve(r->host, r->port, &r->hints, result);
}

static bool all_digits(const char *s) {
    if (s == NULL) return true;
    if (*s == '\0') return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

bool ca_io_host_is_numeric(const char *host, int family) {
    if (host == NULL) return true;
    unsigned char buf[sizeof(struct in6_addr)];
    if ((family == AF_UNSPEC || family == AF_INET) && inet_pton(AF_INET, host, buf) == 1) return true;
    if ((family == AF_UNSPEC || family == AF_INET6) && inet_pton(AF_INET6, host, buf) == 1) return true;
    return false;
}

ca_error *ca_loop_getaddrinfo(ca_loop *loop, const char *host, const char *port, int family, int type, int proto,
                              int flags, ca_future **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (host == NULL && port == NULL) return ca_error_new(&ca_ValueError, "host and port cannot both be None");
    struct addrinfo hints = {.ai_family = family, .ai_socktype = type, .ai_protocol = proto, .ai_flags = flags};
    if (ca_io_host_is_numeric(host, family) && all_digits(port) && !(flags & AI_CANONNAME)) {
        hints.ai_flags |= AI_NUMERICHOST | (port != NULL ? AI_NUMERICSERV : 0);
        ca_future *f = ca_future_new(loop);
        if (f == NULL) return ca_error_new(&ca_MemoryError, NULL);
        ca_value v = ca_none();
        ca_error *exc = gai_resolve(host, port, &hints, &v);
        ca_error *err = exc != NULL ? ca_future_set_exception_impl(f, exc) : ca_future_set_result_impl(f, v);
        ca_decref(exc);
        if (err != NULL) {
            ca_decref(f);
            return err;
        }
        *out = f;
        return NULL;
    }
    gai_request *r = ca_calloc(1, sizeof *r);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    r->hints = hints;
    r->host = host != NULL ? ca_strdup(host) : NULL;
    r->port = port != NULL ? ca_strdup(port) : NULL;
    if ((host != NULL && r->host == NULL) || (port != NULL && r->port == NULL)) {
        gai_request_free(r);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    return ca_loop_run_in_executor(loop, gai_job, r, gai_request_free, out);
}
