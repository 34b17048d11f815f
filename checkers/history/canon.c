/* The canonical fast path of the history reader, in C: the same language and the same columns as
 * `parse_numpy` in canon.py, one pass over the bytes instead of a few dozen numpy passes.
 *
 * A canonical line is compact JSON with the harness's key order:
 *   {"time":N,"process":N,"type":"T","f":"F","value":V}
 * T one of invoke ok fail info; F one of send poll ack; N 1 to 16 plain digits (no sign, no leading
 * zero); strings 0 to 127 bytes of printable ASCII without quote or backslash; V by F:
 *   send: {"id":S,"key":S|null[,"partition":N][,"offset":N]}
 *   poll: null (not on an ok), or {"messages":[E,...]} (not on an invoke); E:
 *         {"id":S,"key":S|null[,"partition":N][,"offset":N][,"redelivered":true|false]}
 *   ack:  null, or {"ids":[S,...]} with at most 64 ids.
 * Every other line is left to the msgspec path (good[i] = 0). Numbers and strings stop at a line's
 * newline; a literal compare may read up to its length past it (and fails there: no literal holds a
 * newline), so the caller leaves LIT_PAD bytes after the last line.
 *
 * Built by checkers/history/native.py with the system's C compiler; no header beyond the compiler's own.
 */
#include <stdint.h>

#define MAX_STR 127
#define MAX_DIGITS 16
#define MAX_ACK_IDS 64

/* s starts with the string literal t: advance past it (one memcmp of a constant length, which
 * the compiler turns into a few word compares) */
#define LIT(s, t) (__builtin_memcmp(*(s), (t), sizeof(t) - 1) == 0 ? (*(s) += sizeof(t) - 1, 1) : 0)

/* a plain non-negative integer of 1 to MAX_DIGITS digits, no leading zero */
static inline int num(const uint8_t **s, int64_t *v) {
    const uint8_t *p = *s;
    int64_t x = 0;
    int n = 0;
    while ((uint8_t)(p[n] - '0') <= 9) {
        if (n == MAX_DIGITS) return 0;
        x = x * 10 + (p[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && p[0] == '0')) return 0;
    *v = x;
    *s = p + n;
    return 1;
}

/* the rest of a string after its opening quote: printable ASCII without a backslash, up to the
 * closing quote; advance past that quote */
static inline int str(const uint8_t **s, int64_t *len) {
    const uint8_t *p = *s;
    int n = 0;
    for (;;) {
        uint8_t b = p[n];
        if (b == '"') break;
        if ((uint8_t)(b - 32) > 94 || b == '\\' || n == MAX_STR) return 0;
        n++;
    }
    *len = n;
    *s = p + n + 1;
    return 1;
}

/* a string or null */
static inline int key(const uint8_t **s) {
    int64_t len;
    if (**s == '"') {
        (*s)++;
        return str(s, &len);
    }
    return LIT(s, "null");
}

/* [,"name":N] */
static inline int opt_int(const uint8_t **s, const char *name, unsigned long len, int64_t *v) {
    *v = -1;
    if (__builtin_memcmp(*s, name, len) != 0) return 1;
    *s += len;
    return num(s, v);
}

/* `{"id":S,"key":K[,"partition":N][,"offset":N]` with the id's position and length */
static inline int head(const uint8_t *buf, const uint8_t **s, int64_t *at, int64_t *len, int64_t *part, int64_t *off) {
    if (!LIT(s, "{\"id\":\"")) return 0;
    *at = *s - buf;
    if (!str(s, len)) return 0;
    if (!LIT(s, ",\"key\":") || !key(s)) return 0;
    return opt_int(s, ",\"partition\":", 13, part) && opt_int(s, ",\"offset\":", 10, off);
}

/* Parse lines [starts[i], ends[i]) of buf (ends[i]: the line's newline). Per line: good, time, proc,
 * type code, f code (meaningful where good). Sends of good lines: row, partition, offset (-1 when
 * absent), id position and length. Entries of good polls: row, number in the poll, id position and
 * length, partition, offset, redelivered. Returns 0, or -1 when more than m_cap entries were met. */
int canon_parse(const uint8_t *buf, int64_t n, const int64_t *starts, const int64_t *ends,
                uint8_t *good, int64_t *time, int64_t *proc, int64_t *tcode, int64_t *fcode,
                int64_t *s_rows, int64_t *s_part, int64_t *s_off, int64_t *s_at, int64_t *s_len, int64_t *ns_out,
                int64_t *m_rows, int64_t *m_seq, int64_t *m_at, int64_t *m_len, int64_t *m_part, int64_t *m_off,
                uint8_t *m_red, int64_t m_cap, int64_t *nm_out) {
    int64_t ns = 0, nm = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *s = buf + starts[i];
        const uint8_t *end = buf + ends[i];
        int64_t nm0 = nm;
        int t = -1, f = -1;
        good[i] = 0;
        time[i] = proc[i] = tcode[i] = fcode[i] = -1;
        if (!LIT(&s, "{\"time\":") || !num(&s, &time[i])) continue;
        if (!LIT(&s, ",\"process\":") || !num(&s, &proc[i])) continue;
        if (!LIT(&s, ",\"type\":\"")) continue;
        if (LIT(&s, "invoke\"")) t = 0;
        else if (LIT(&s, "ok\"")) t = 1;
        else if (LIT(&s, "fail\"")) t = 2;
        else if (LIT(&s, "info\"")) t = 3;
        else continue;
        if (LIT(&s, ",\"f\":\"send\",\"value\":")) f = 0;
        else if (LIT(&s, ",\"f\":\"poll\",\"value\":")) f = 1;
        else if (LIT(&s, ",\"f\":\"ack\",\"value\":")) f = 2;
        else continue;
        tcode[i] = t;
        fcode[i] = f;
        if (f == 0) { /* send */
            int64_t at, len, part, off;
            if (!head(buf, &s, &at, &len, &part, &off) || !LIT(&s, "}}") || s != end) continue;
            s_rows[ns] = i;
            s_part[ns] = part;
            s_off[ns] = off;
            s_at[ns] = at;
            s_len[ns] = len;
            ns++;
        } else if (f == 1) { /* poll */
            if (LIT(&s, "null}")) {
                if (s != end || t == 1) continue;
            } else {
                int ok = 1;
                if (t == 0 || !LIT(&s, "{\"messages\":[")) continue;
                if (*s != ']') {
                    for (int64_t seq = 0;; seq++) {
                        int64_t at, len, part, off;
                        uint8_t red = 0;
                        if (!head(buf, &s, &at, &len, &part, &off)) { ok = 0; break; }
                        if (LIT(&s, ",\"redelivered\":")) {
                            if (LIT(&s, "true")) red = 1;
                            else if (!LIT(&s, "false")) { ok = 0; break; }
                        }
                        if (!LIT(&s, "}")) { ok = 0; break; }
                        if (nm == m_cap) return -1;
                        m_rows[nm] = i;
                        m_seq[nm] = seq;
                        m_at[nm] = at;
                        m_len[nm] = len;
                        m_part[nm] = part;
                        m_off[nm] = off;
                        m_red[nm] = red;
                        nm++;
                        if (*s == ']') break;
                        if (!LIT(&s, ",")) { ok = 0; break; }
                    }
                }
                if (!ok || !LIT(&s, "]}}") || s != end) {
                    nm = nm0;
                    continue;
                }
            }
        } else { /* ack */
            if (LIT(&s, "null}")) {
                if (s != end) continue;
            } else {
                int ok = 1;
                if (!LIT(&s, "{\"ids\":[")) continue;
                if (*s != ']') {
                    for (int k = 0;; k++) {
                        int64_t len;
                        if (k == MAX_ACK_IDS || !LIT(&s, "\"") || !str(&s, &len)) { ok = 0; break; }
                        if (*s == ']') break;
                        if (!LIT(&s, ",")) { ok = 0; break; }
                    }
                }
                if (!ok || !LIT(&s, "]}}") || s != end) continue;
            }
        }
        good[i] = 1;
    }
    *ns_out = ns;
    *nm_out = nm;
    return 0;
}

static inline const uint8_t *ws(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* An effects read's counts, raw JSON that msgspec has found valid: a plain object of ids without
 * escapes to integers of at most 18 digits, as the ids' positions and lengths and the counts.
 * Returns how many, or -1 when it is anything else (then the caller decodes it the general way) or
 * holds more than cap ids. */
int64_t canon_counts(const uint8_t *raw, int64_t n, int64_t *at, int64_t *len, int64_t *counts, int64_t cap) {
    const uint8_t *p = raw, *end = raw + n;
    int64_t k = 0;
    p = ws(p, end);
    if (p == end || *p++ != '{') return -1;
    p = ws(p, end);
    if (p < end && *p == '}') return ws(p + 1, end) == end ? 0 : -1;
    for (;;) {
        if (p == end || *p++ != '"' || k == cap) return -1;
        const uint8_t *q = p;
        while (q < end && *q != '"') {
            if (*q == '\\') return -1;
            q++;
        }
        if (q == end) return -1;
        at[k] = p - raw;
        len[k] = q - p;
        p = ws(q + 1, end);
        if (p == end || *p++ != ':') return -1;
        p = ws(p, end);
        int64_t v = 0;
        int d = 0;
        while (p < end && (uint8_t)(*p - '0') <= 9) {
            if (++d > 18) return -1;
            v = v * 10 + (*p++ - '0');
        }
        if (d == 0) return -1;
        counts[k++] = v;
        p = ws(p, end);
        if (p == end) return -1;
        if (*p == '}') return ws(p + 1, end) == end ? k : -1;
        if (*p++ != ',') return -1;
        p = ws(p, end);
    }
}
