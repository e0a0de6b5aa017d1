/*
 * TLS termination (docs/TLS.md): OpenSSL 3 over the project's pollDescs.
 *
 * A tls_ctx is one listener's server side, built when the config is
 * loaded: one SSL_CTX per certificate/key pair, the first the default,
 * the others picked by the client's SNI name. A tls_conn is one client
 * connection over a pollDesc the caller keeps owning.
 *
 * How a connection does I/O, and why: its SSL reads through a BIO whose
 * read is pd_try_read (never parks), and writes into a buffer of the
 * connection's own that the calling coroutine then hands to pd_write_full.
 * So no OpenSSL call ever parks: a coroutine parks only between calls, on
 * the pollDesc, and the relay's two pumps may use one SSL object (one
 * reading, one writing) without either being inside OpenSSL while the other
 * runs. Every I/O mode works, because only pd_* operations touch the socket.
 */
#ifndef FRAMEPROXY_PROXY_TLS_H
#define FRAMEPROXY_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "poll/poll.h"

#define TLS_WHY_MAX 256

typedef enum tls_version {
	TLS_VERSION_1_2 = 0,
	TLS_VERSION_1_3 = 1,
	TLS_VERSION_COUNT,
} tls_version;

/* "1.2" / "1.3" (also "TLSv1.2", "TLSv1.3"). -EINVAL otherwise. */
int tls_version_parse(const char *text, tls_version *out);
/* "TLSv1.2", "TLSv1.3"; "unknown" out of range. */
const char *tls_version_name(tls_version v);

/* mTLS: whether a client must show a certificate signed by the CA. */
typedef enum tls_verify {
	TLS_VERIFY_OFF = 0,          /* none asked for */
	TLS_VERIFY_OPTIONAL,         /* asked for; none is fine, a bad one fails */
	TLS_VERIFY_REQUIRED,         /* none or a bad one fails the handshake */
} tls_verify;

/* "off" | "optional" | "required". -EINVAL otherwise. */
int tls_verify_parse(const char *text, tls_verify *out);

/* The longest ALPN list (wire form: each name preceded by its length). */
#define TLS_ALPN_MAX 1024

/* What a listener's tls_ctx is built from (the config's strings). */
typedef struct tls_settings {
	char *const *certs;          /* PEM paths, one per pair */
	char *const *keys;
	size_t pairs;                /* >= 1 */
	tls_version min_version;
	const char *ciphers;         /* TLS 1.2 list, NULL: OpenSSL's default */
	const char *ciphersuites;    /* TLS 1.3 list, NULL: OpenSSL's default */
	tls_verify verify_client;
	const char *client_ca;       /* PEM CAs; needed unless verify is off */
	const char *alpn;            /* "p1,p2" (ours, by preference), or NULL */
} tls_settings;

typedef struct tls_ctx tls_ctx;

/* Config checks, one file or value each: 0, or -1 with the reason in why. */
int tls_check_cert_file(const char *path, char *why, size_t why_len);
int tls_check_key_file(const char *path, char *why, size_t why_len);
int tls_check_ciphers(const char *list, bool tls13, char *why,
		      size_t why_len);
/* "p1,p2": names of 1..255 bytes, no empty one, at most TLS_ALPN_MAX in
 * wire form. */
int tls_check_alpn(const char *list, char *why, size_t why_len);

/* 0, or -1 with the reason in why (a pair whose key is not the cert's). */
int tls_ctx_build(const tls_settings *s, tls_ctx **out, char *why,
		  size_t why_len);
void tls_ctx_free(tls_ctx *ctx);

/*
 * A client side (framebench --tls, upstream_tls): peers verified against
 * the PEM CA file, or OpenSSL's default CA store when ca_file is NULL.
 * 0, or -1 with the reason in why.
 */
int tls_client_ctx_build(const char *ca_file, char *why, size_t why_len,
			 tls_ctx **out);

typedef struct tls_conn tls_conn;

/* A server-side connection over `pd` (still the caller's). NULL: no memory. */
tls_conn *tls_conn_new(tls_ctx *ctx, poll_desc *pd);
/* A client connection to `name` (SNI and the name verified: a host name
 * or an IP address). NULL: no memory. */
tls_conn *tls_conn_new_client(tls_ctx *ctx, poll_desc *pd, const char *name);
void tls_conn_free(tls_conn *t);

/*
 * The handshake (either side), parked on the pollDesc until done or `deadline_ns`
 * (sched_now clock, 0 = none). 0, or -ETIMEDOUT, -EPROTO (with OpenSSL's
 * reason in why; a client side that refused the peer's certificate says
 * why, "certificate verify failed: hostname mismatch"), -ECONNRESET (the
 * peer left), -errno.
 */
int tls_handshake(tls_conn *t, int64_t deadline_ns, char *why,
		  size_t why_len);
tls_version tls_conn_version(const tls_conn *t);
/* After a handshake that succeeded: the verified client certificate's
 * subject, one line in RFC 2253 form (cut to fit), into buf; false when
 * the client showed none. */
bool tls_conn_peer_subject(const tls_conn *t, char *buf, size_t len);
/* After a handshake that succeeded: the protocol ALPN chose, NUL-ended
 * (buf of at least 256 bytes); false when none was. */
bool tls_conn_alpn(const tls_conn *t, char *buf, size_t len);

/* Plaintext: n > 0, 0 at EOF (close_notify or the socket's), -EAGAIN when
 * more must come from the socket, -ECONNRESET / -EPROTO / -errno. */
ssize_t tls_try_read(tls_conn *t, void *buf, size_t len);
/* tls_try_read, parked on the pollDesc until something comes (as pd_read,
 * but always asking before parking). */
ssize_t tls_read(tls_conn *t, void *buf, size_t len);
/* Plaintext already decrypted and not read yet: the socket may be empty
 * while this is true, so a reader must not wait on readiness then. */
bool tls_pending(const tls_conn *t);
/* Encrypt and write all of buf, parked as pd_write_full. len, or -errno. */
ssize_t tls_write_full(tls_conn *t, const void *buf, size_t len);
/* close_notify, then shutdown(SHUT_WR) of the socket. 0 or -errno. */
int tls_shutdown_write(tls_conn *t);

#endif
