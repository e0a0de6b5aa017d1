/*
 * TLS termination over pollDescs (proxy/tls.h, docs/TLS.md).
 *
 * The BIO: read is pd_try_read, which never parks (EAGAIN becomes a BIO
 * retry, so SSL_read/SSL_do_handshake say WANT_READ and the caller parks on
 * the pollDesc outside OpenSSL). Write appends to the connection's own
 * buffer; tls_flush hands that buffer to pd_write_full after the OpenSSL
 * call returned. Only one coroutine flushes at a time (the buffer is taken
 * whole, so bytes appended meanwhile go out in order on the next round); a
 * second writer waits for it, which keeps the writer's backpressure.
 * No read-ahead: OpenSSL then never holds bytes of a record it has not
 * asked for, so "the socket is empty and SSL_pending is 0" means there is
 * nothing to read, and the relay's readiness watch is enough.
 */
#include "proxy/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Plaintext given to one SSL_write: bounds the buffered ciphertext. */
#define TLS_WRITE_CHUNK (64u * 1024u)

typedef struct tls_pair {
	SSL_CTX *ssl_ctx;
	X509 *cert;                 /* its leaf, for SNI matching */
} tls_pair;

typedef struct tls_ctx {
	tls_pair *pairs;            /* [0] is the default */
	size_t count;
	BIO_METHOD *bio_method;     /* the pollDesc BIO, shared by its conns */
	uint8_t alpn[TLS_ALPN_MAX]; /* ours in wire form, by preference */
	size_t alpn_len;            /* 0: no ALPN */
} tls_ctx;

typedef struct tls_out {
	uint8_t *data;
	size_t len, cap;
} tls_out;

typedef struct tls_conn {
	SSL *ssl;
	poll_desc *pd;
	tls_out out;                /* ciphertext not handed to the socket yet */
	int io_error;               /* last -errno of the socket, or 0 */
	int write_error;            /* sticky: a flush failed */
	bool flushing;
	bool established;           /* the handshake succeeded */
	coro *flush_waiter;
} tls_conn;

/* --- versions ------------------------------------------------------------- */

int tls_version_parse(const char *text, tls_version *out)
{
	if (!strcmp(text, "1.2") || !strcmp(text, "TLSv1.2"))
		*out = TLS_VERSION_1_2;
	else if (!strcmp(text, "1.3") || !strcmp(text, "TLSv1.3"))
		*out = TLS_VERSION_1_3;
	else
		return -EINVAL;
	return 0;
}

const char *tls_version_name(tls_version v)
{
	static const char *const names[TLS_VERSION_COUNT] = {"TLSv1.2",
							     "TLSv1.3"};
	return (unsigned)v < TLS_VERSION_COUNT ? names[v] : "unknown";
}

int tls_verify_parse(const char *text, tls_verify *out)
{
	if (!strcmp(text, "off"))
		*out = TLS_VERIFY_OFF;
	else if (!strcmp(text, "optional"))
		*out = TLS_VERIFY_OPTIONAL;
	else if (!strcmp(text, "required"))
		*out = TLS_VERIFY_REQUIRED;
	else
		return -EINVAL;
	return 0;
}

/* --- OpenSSL's reasons ---------------------------------------------------- */

/* The last error of the queue as one short phrase, the queue emptied. */
static void take_reason(char *why, size_t why_len, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(why, why_len, "%s", r ? r : fallback);
	ERR_clear_error();
}

/* --- config checks -------------------------------------------------------- */

static int check_fail(char *why, size_t why_len, const char *path,
		      const char *what)
{
	char reason[TLS_WHY_MAX];

	take_reason(reason, sizeof(reason), strerror(errno));
	snprintf(why, why_len, "cannot read %s '%s': %s", what, path, reason);
	return -1;
}

/* One PEM object of the file parses (read_pem frees it): 0, or -1 and
 * the reason in `why`. */
static int check_pem_file(const char *path, const char *what,
			  bool (*read_pem)(FILE *f), char *why, size_t why_len)
{
	ERR_clear_error();
	errno = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return check_fail(why, why_len, path, what);
	bool ok = read_pem(f);
	fclose(f);
	if (!ok) {
		errno = EINVAL;
		return check_fail(why, why_len, path, what);
	}
	return 0;
}

static bool read_cert(FILE *f)
{
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);

	X509_free(x);
	return x != NULL;
}

static bool read_key(FILE *f)
{
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);

	EVP_PKEY_free(k);
	return k != NULL;
}

int tls_check_cert_file(const char *path, char *why, size_t why_len)
{
	return check_pem_file(path, "certificate", read_cert, why, why_len);
}

int tls_check_key_file(const char *path, char *why, size_t why_len)
{
	return check_pem_file(path, "key", read_key, why, why_len);
}

int tls_check_ciphers(const char *list, bool tls13, char *why,
		      size_t why_len)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	int ok;

	if (!c) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	ERR_clear_error();
	ok = tls13 ? SSL_CTX_set_ciphersuites(c, list)
		   : SSL_CTX_set_cipher_list(c, list);
	SSL_CTX_free(c);
	if (ok == 1)
		return 0;
	char reason[TLS_WHY_MAX];
	take_reason(reason, sizeof(reason), "no cipher matched");
	snprintf(why, why_len, "invalid %s '%s': %s",
		 tls13 ? "TLS 1.3 ciphersuites" : "cipher list", list, reason);
	return -1;
}

/* "p1,p2" into wire form (each name after its length byte): 0, or -1 with
 * the reason in why. Spaces around a name are not part of it. */
static int alpn_encode(const char *list, uint8_t *wire, size_t cap,
		       size_t *out_len, char *why, size_t why_len)
{
	size_t len = 0;
	const char *p = list;

	for (;;) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, ",");
		size_t name = n;
		while (name > 0 && (p[name - 1] == ' ' || p[name - 1] == '\t'))
			name--;
		if (name == 0 || name > 255) {
			snprintf(why, why_len, "invalid tls_alpn '%s' (expected "
				 "names of 1 to 255 bytes, comma-separated)", list);
			return -1;
		}
		if (len + 1 + name > cap) {
			snprintf(why, why_len, "invalid tls_alpn '%s': longer than "
				 "%zu bytes", list, cap);
			return -1;
		}
		wire[len++] = (uint8_t)name;
		memcpy(wire + len, p, name);
		len += name;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	*out_len = len;
	return 0;
}

int tls_check_alpn(const char *list, char *why, size_t why_len)
{
	uint8_t wire[TLS_ALPN_MAX];
	size_t len;

	return alpn_encode(list, wire, sizeof(wire), &len, why, why_len);
}

/* --- the context ---------------------------------------------------------- */

/* SNI: the first pair whose certificate names the host; else the default. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	tls_ctx *ctx = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (!name)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 1; i < ctx->count; i++) {
		if (X509_check_host(ctx->pairs[i].cert, name, 0, 0, NULL) == 1) {
			SSL_set_SSL_CTX(ssl, ctx->pairs[i].ssl_ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/* ALPN, the server's preference: the first of ours the client offers. None
 * in common fails the handshake (a no_application_protocol alert); a
 * client that offers none never gets here. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	const tls_ctx *ctx = arg;

	(void)ssl;
	for (size_t i = 0; i < ctx->alpn_len; i += 1u + ctx->alpn[i]) {
		const uint8_t *ours = ctx->alpn + i + 1;
		for (unsigned j = 0; j < inlen && j + 1u + in[j] <= inlen;
		     j += 1u + in[j]) {
			if (in[j] == ctx->alpn[i] && !memcmp(in + j + 1, ours, in[j])) {
				*out = in + j + 1;
				*outlen = in[j];
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int pair_fail(char *why, size_t why_len, const tls_settings *s,
		     size_t i, const char *what)
{
	char reason[TLS_WHY_MAX];

	take_reason(reason, sizeof(reason), "unknown error");
	snprintf(why, why_len, "tls_cert '%s' / tls_key '%s': %s: %s",
		 s->certs[i], s->keys[i], what, reason);
	return -1;
}

/* mTLS, the same on every pair (SNI may switch a connection to any of
 * them): the CA to verify against and to name in the certificate request. */
static int pair_verify(SSL_CTX *c, const tls_settings *s, char *why,
		       size_t why_len)
{
	static const unsigned char sid[] = "frameproxy";
	char reason[TLS_WHY_MAX];

	if (s->verify_client == TLS_VERIFY_OFF)
		return 0;
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->client_ca);
	if (!names || SSL_CTX_load_verify_locations(c, s->client_ca, NULL) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		take_reason(reason, sizeof(reason), "no certificate in it");
		snprintf(why, why_len, "tls_client_ca '%s': %s", s->client_ca,
			 reason);
		return -1;
	}
	SSL_CTX_set_client_CA_list(c, names);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER |
			   (s->verify_client == TLS_VERIFY_REQUIRED
				    ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	/* Never resumed (no cache, no tickets), but OpenSSL wants one with
	 * verification on. */
	SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1);
	return 0;
}

static int pair_build(tls_ctx *ctx, const tls_settings *s, size_t i,
		      char *why, size_t why_len)
{
	tls_pair *p = &ctx->pairs[i];
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	if (!c)
		return pair_fail(why, why_len, s, i, "SSL_CTX_new");
	p->ssl_ctx = c;
	SSL_CTX_set_min_proto_version(c, s->min_version == TLS_VERSION_1_3
						 ? TLS1_3_VERSION
						 : TLS1_2_VERSION);
	/* A client's EOF is judged by the frame layer (a cut frame is
	 * client_truncated), as it is without TLS. */
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF |
				       SSL_OP_NO_RENEGOTIATION);
	/* Idle connections give their record buffers back. */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	/* No resumption yet (docs/TLS.md): no tickets to send. */
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	if (s->ciphers && SSL_CTX_set_cipher_list(c, s->ciphers) != 1)
		return pair_fail(why, why_len, s, i, "tls_ciphers");
	if (s->ciphersuites && SSL_CTX_set_ciphersuites(c, s->ciphersuites) != 1)
		return pair_fail(why, why_len, s, i, "tls_ciphersuites");
	if (SSL_CTX_use_certificate_chain_file(c, s->certs[i]) != 1)
		return pair_fail(why, why_len, s, i, "certificate");
	if (SSL_CTX_use_PrivateKey_file(c, s->keys[i], SSL_FILETYPE_PEM) != 1)
		return pair_fail(why, why_len, s, i, "key");
	if (SSL_CTX_check_private_key(c) != 1)
		return pair_fail(why, why_len, s, i, "the key is not the certificate's");
	p->cert = SSL_CTX_get0_certificate(c);
	if (p->cert)
		X509_up_ref(p->cert);
	SSL_CTX_set_tlsext_servername_callback(c, on_servername);
	SSL_CTX_set_tlsext_servername_arg(c, ctx);
	if (ctx->alpn_len)
		SSL_CTX_set_alpn_select_cb(c, on_alpn, ctx);
	return pair_verify(c, s, why, why_len);
}

static int bio_write(BIO *b, const char *data, int len);
static int bio_read(BIO *b, char *data, int len);
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr);

static BIO_METHOD *bio_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "frameproxy pollDesc");
	if (!m)
		return NULL;
	BIO_meth_set_write(m, bio_write);
	BIO_meth_set_read(m, bio_read);
	BIO_meth_set_ctrl(m, bio_ctrl);
	return m;
}

int tls_ctx_build(const tls_settings *s, tls_ctx **out, char *why,
		  size_t why_len)
{
	tls_ctx *ctx = calloc(1, sizeof(*ctx));

	ERR_clear_error();
	if (!ctx || !(ctx->pairs = calloc(s->pairs, sizeof(tls_pair))) ||
	    !(ctx->bio_method = bio_method_new())) {
		tls_ctx_free(ctx);
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	ctx->count = s->pairs;
	if (s->alpn && alpn_encode(s->alpn, ctx->alpn, sizeof(ctx->alpn),
				   &ctx->alpn_len, why, why_len) < 0) {
		tls_ctx_free(ctx);
		return -1;
	}
	for (size_t i = 0; i < s->pairs; i++) {
		if (pair_build(ctx, s, i, why, why_len) < 0) {
			tls_ctx_free(ctx);
			return -1;
		}
	}
	*out = ctx;
	return 0;
}

void tls_ctx_free(tls_ctx *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; ctx->pairs && i < ctx->count; i++) {
		X509_free(ctx->pairs[i].cert);
		SSL_CTX_free(ctx->pairs[i].ssl_ctx);
	}
	free(ctx->pairs);
	if (ctx->bio_method)
		BIO_meth_free(ctx->bio_method);
	free(ctx);
}

int tls_client_ctx_build(const char *ca_file, char *why, size_t why_len,
			 tls_ctx **out)
{
	tls_ctx *ctx = calloc(1, sizeof(*ctx));

	ERR_clear_error();
	if (!ctx || !(ctx->pairs = calloc(1, sizeof(tls_pair))) ||
	    !(ctx->bio_method = bio_method_new()) ||
	    !(ctx->pairs[0].ssl_ctx = SSL_CTX_new(TLS_client_method()))) {
		tls_ctx_free(ctx);
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	ctx->count = 1;
	SSL_CTX *c = ctx->pairs[0].ssl_ctx;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	int loaded = ca_file ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
			     : SSL_CTX_set_default_verify_paths(c);
	if (loaded != 1) {
		char reason[TLS_WHY_MAX];
		take_reason(reason, sizeof(reason), "unreadable");
		snprintf(why, why_len, "CA file '%s': %s",
			 ca_file ? ca_file : "(OpenSSL's default)", reason);
		tls_ctx_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
}

/* --- the BIO -------------------------------------------------------------- */

static int bio_read(BIO *b, char *data, int len)
{
	tls_conn *t = BIO_get_data(b);
	ssize_t n = pd_try_read(t->pd, data, (size_t)len);

	BIO_clear_retry_flags(b);
	if (n == -EAGAIN) {
		BIO_set_retry_read(b);
		return -1;
	}
	if (n < 0) {
		t->io_error = (int)n;
		return -1;
	}
	return (int)n; /* 0: EOF */
}

static int out_reserve(tls_out *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + more)
		cap *= 2;
	uint8_t *d = realloc(o->data, cap);
	if (!d)
		return -ENOMEM;
	o->data = d;
	o->cap = cap;
	return 0;
}

static int bio_write(BIO *b, const char *data, int len)
{
	tls_conn *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (out_reserve(&t->out, (size_t)len) < 0) {
		t->io_error = -ENOMEM;
		return -1;
	}
	memcpy(t->out.data + t->out.len, data, (size_t)len);
	t->out.len += (size_t)len;
	return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* tls_flush does the real one */
}

/* --- a connection --------------------------------------------------------- */

tls_conn *tls_conn_new(tls_ctx *ctx, poll_desc *pd)
{
	tls_conn *t = calloc(1, sizeof(*t));
	BIO *bio = NULL;

	if (!t)
		return NULL;
	t->pd = pd;
	t->ssl = SSL_new(ctx->pairs[0].ssl_ctx);
	if (t->ssl)
		bio = BIO_new(ctx->bio_method);
	if (!bio) {
		tls_conn_free(t);
		return NULL;
	}
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_accept_state(t->ssl);
	return t;
}

tls_conn *tls_conn_new_client(tls_ctx *ctx, poll_desc *pd, const char *name)
{
	tls_conn *t = tls_conn_new(ctx, pd);
	struct in6_addr a6;
	struct in_addr a4;

	if (!t)
		return NULL;
	SSL_set_connect_state(t->ssl);
	if (inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
		return t;
	}
	if (SSL_set_tlsext_host_name(t->ssl, name) != 1 ||
	    SSL_set1_host(t->ssl, name) != 1) {
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

void tls_conn_free(tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->out.data);
	free(t);
}

tls_version tls_conn_version(const tls_conn *t)
{
	return SSL_version(t->ssl) == TLS1_3_VERSION ? TLS_VERSION_1_3
						      : TLS_VERSION_1_2;
}

bool tls_conn_peer_subject(const tls_conn *t, char *buf, size_t len)
{
	X509 *x = t->established ? SSL_get0_peer_certificate(t->ssl) : NULL;

	if (!x || len == 0 || SSL_get_verify_result(t->ssl) != X509_V_OK)
		return false;
	BIO *m = BIO_new(BIO_s_mem());
	if (!m)
		return false;
	int ok = X509_NAME_print_ex(m, X509_get_subject_name(x), 0,
				    XN_FLAG_RFC2253);
	int n = ok >= 0 ? BIO_read(m, buf, (int)(len - 1)) : -1;
	BIO_free(m);
	ERR_clear_error();
	buf[n > 0 ? n : 0] = '\0';
	return n > 0;
}

bool tls_conn_alpn(const tls_conn *t, char *buf, size_t len)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	if (t->established)
		SSL_get0_alpn_selected(t->ssl, &p, &n);
	if (!p || n == 0 || n >= len)
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

/* Hand the buffered ciphertext to the socket. A second caller waits for the
 * first, whose loop takes what the second appended. 0 or -errno. */
static int tls_flush(tls_conn *t)
{
	if (t->flushing) {
		/* Only the relay's two pumps share a connection: one waiter. */
		t->flush_waiter = coro_self();
		while (t->flushing)
			coro_park("tls flush");
		return t->write_error;
	}
	t->flushing = true;
	while (t->out.len > 0 && t->write_error == 0) {
		tls_out taken = t->out;
		t->out = (tls_out){0};
		ssize_t n = pd_write_full(t->pd, taken.data, taken.len);
		if (n < 0)
			t->write_error = (int)n;
		/* Given back at once: an idle connection holds no buffer of
		 * ours (the allocator keeps them hot for the next write). */
		free(taken.data);
	}
	t->flushing = false;
	coro *w = t->flush_waiter;
	t->flush_waiter = NULL;
	if (w)
		coro_ready(w);
	return t->write_error;
}

/* A side that refused the peer's certificate (a client the server's, a
 * server with mTLS the client's): OpenSSL's reason ("certificate verify
 * failed") says that it did, the verify result why. */
static void verify_reason(const tls_conn *t, char *why, size_t why_len)
{
	long v = SSL_get_verify_result(t->ssl);

	if (v == X509_V_OK)
		return;
	snprintf(why, why_len, "certificate verify failed: %s",
		 X509_verify_cert_error_string(v));
}

static int wait_read(tls_conn *t)
{
	int rc = tls_flush(t);

	return rc < 0 ? rc : pd_wait(t->pd, PD_READ);
}

int tls_handshake(tls_conn *t, int64_t deadline_ns, char *why,
		  size_t why_len)
{
	int rc = 0;

	pd_set_deadline(t->pd, PD_BOTH, deadline_ns);
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		if (r == 1) {
			rc = tls_flush(t);
			t->established = rc == 0;
			break;
		}
		int err = SSL_get_error(t->ssl, r);
		if (err == SSL_ERROR_WANT_READ) {
			rc = wait_read(t);
			if (rc == 0)
				continue;
			snprintf(why, why_len, "%s", rc == -ETIMEDOUT
					  ? "handshake timeout" : strerror(-rc));
			break;
		}
		/* An alert may be queued for the client: try to send it. */
		tls_flush(t);
		if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
			rc = t->io_error ? t->io_error : -ECONNRESET;
			take_reason(why, why_len, t->io_error
				    ? strerror(-t->io_error)
				    : "client closed during the handshake");
		} else {
			rc = -EPROTO;
			take_reason(why, why_len, "handshake failed");
			verify_reason(t, why, why_len);
		}
		break;
	}
	pd_set_deadline(t->pd, PD_BOTH, 0);
	ERR_clear_error();
	return rc;
}

ssize_t tls_try_read(tls_conn *t, void *buf, size_t len)
{
	ERR_clear_error();
	int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		/* A KeyUpdate answer or the like may wait in the buffer. */
		if (t->out.len > 0 && !t->flushing) {
			int rc = tls_flush(t);
			if (rc < 0)
				return rc;
		}
		return r;
	}
	int err = SSL_get_error(t->ssl, r);
	ERR_clear_error();
	switch (err) {
	case SSL_ERROR_WANT_READ:
		if (t->out.len > 0 && !t->flushing) {
			int rc = tls_flush(t);
			if (rc < 0)
				return rc;
		}
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		return t->io_error ? t->io_error : 0;
	default:
		return t->io_error ? t->io_error : -EPROTO;
	}
}

ssize_t tls_read(tls_conn *t, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = tls_try_read(t, buf, len);
		if (n != -EAGAIN)
			return n;
		int rc = pd_wait(t->pd, PD_READ);
		if (rc < 0)
			return rc;
	}
}

bool tls_pending(const tls_conn *t)
{
	return SSL_pending(t->ssl) > 0;
}

ssize_t tls_write_full(tls_conn *t, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t left = len;

	while (left > 0) {
		size_t chunk = left < TLS_WRITE_CHUNK ? left : TLS_WRITE_CHUNK;
		ERR_clear_error();
		int r = SSL_write(t->ssl, p, (int)chunk);
		if (r <= 0) {
			ERR_clear_error();
			return t->io_error ? t->io_error : -EPIPE;
		}
		p += r;
		left -= (size_t)r;
		int rc = tls_flush(t);
		if (rc < 0)
			return rc;
	}
	return (ssize_t)len;
}

int tls_shutdown_write(tls_conn *t)
{
	ERR_clear_error();
	SSL_shutdown(t->ssl); /* 0: ours sent, theirs not yet: fine */
	ERR_clear_error();
	int rc = tls_flush(t);
	int sr = pd_shutdown(t->pd, SHUT_WR);
	return rc < 0 ? rc : sr;
}
