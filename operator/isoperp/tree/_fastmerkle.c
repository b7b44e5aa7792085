/* isoperp.tree._fastmerkle: keccak256 and the dirty-path flush of SparseMerkleTree in C.
 *
 * Optional accelerator: isoperp/tree/merkle.py keeps the pure-Python flush as the reference and
 * the fallback, and tests/operator/tree/test_fastmerkle.py checks this module against it.
 *
 *   keccak256(data) -> bytes      Keccak-256 with the original padding (0x01 ... 0x80), as
 *                                 Ethereum; data is any C-contiguous bytes-like object.
 *   flush(levels, zeros, dirty, depth) -> None
 *                                 the loop of SparseMerkleTree._flush_python (see flush below).
 *   impl() -> str, impls() -> tuple[str, ...], set_impl(name) -> None
 *                                 which keccak-f[1600] kernel hashes nodes: "scalar" everywhere,
 *                                 plus "avx2" (4 nodes at once) and "avx512" (4 or 8 nodes at
 *                                 once) on x86-64 CPUs that have them, picked at import.
 *
 * The permutation is a plain, fully specified keccak-f[1600] (FIPS 202 section 3) written out
 * lane by lane, two rounds per loop step with the roles of the A and E lanes swapped. The same
 * macro instantiates a scalar version and, through GCC/Clang vector extensions and per-function
 * target attributes, versions that run 4 or 8 independent states side by side in AVX2/AVX-512
 * registers. Nodes of one tree level are independent, so a level's nodes are hashed in batches.
 * No third-party code or library.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define FM_BIG_ENDIAN 1 /* lanes are little-endian: loads and stores swap bytes */
#endif
#endif

/* ---------------------------------------------------------------------------------------------
 * keccak-f[1600]
 */

static const uint64_t keccak_rc[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

#define ROL64(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

/* Theta adds D[x] = C[x-1] ^ rol(C[x+1], 1) to every lane of column x. Variant 2 computes D[x]
 * and adds it with one XOR per lane; variant 3 keeps C[x-1] and rol(C[x+1], 1) apart and adds
 * both with a three-input XOR per lane, a single VPTERNLOGQ with AVX-512 (fewer instructions
 * there, more everywhere else). */
#define THETA_D2(prev, next) ((prev) ^ ROL64(next, 1))
#define THETA_X2(a, prev, d) ((a) ^ (d))
#define THETA_D3(prev, next) ROL64(next, 1)
#define THETA_X3(a, prev, d) ((a) ^ (prev) ^ (d))

/* Lanes are named A<row><column>: rows b g k m s are y = 0..4, columns a e i o u are x = 0..4,
 * stored at index x + 5 y. One round reads the A lanes and writes the E lanes: theta, then for
 * each output row the five rho-rotated, pi-permuted lanes (B), then chi, and iota on lane 0. */
#define KECCAK_ROUND(A, E, rc, V)                                                                 \
    do {                                                                                          \
        Ca = A##ba ^ A##ga ^ A##ka ^ A##ma ^ A##sa;                                               \
        Ce = A##be ^ A##ge ^ A##ke ^ A##me ^ A##se;                                               \
        Ci = A##bi ^ A##gi ^ A##ki ^ A##mi ^ A##si;                                               \
        Co = A##bo ^ A##go ^ A##ko ^ A##mo ^ A##so;                                               \
        Cu = A##bu ^ A##gu ^ A##ku ^ A##mu ^ A##su;                                               \
        Da = THETA_D##V(Cu, Ce);                                                                  \
        De = THETA_D##V(Ca, Ci);                                                                  \
        Di = THETA_D##V(Ce, Co);                                                                  \
        Do = THETA_D##V(Ci, Cu);                                                                  \
        Du = THETA_D##V(Co, Ca);                                                                  \
                                                                                                  \
        Ba = THETA_X##V(A##ba, Cu, Da);                                                           \
        Be = ROL64(THETA_X##V(A##ge, Ca, De), 44);                                                \
        Bi = ROL64(THETA_X##V(A##ki, Ce, Di), 43);                                                \
        Bo = ROL64(THETA_X##V(A##mo, Ci, Do), 21);                                                \
        Bu = ROL64(THETA_X##V(A##su, Co, Du), 14);                                                \
        E##ba = Ba ^ (~Be & Bi) ^ (rc);                                                           \
        E##be = Be ^ (~Bi & Bo);                                                                  \
        E##bi = Bi ^ (~Bo & Bu);                                                                  \
        E##bo = Bo ^ (~Bu & Ba);                                                                  \
        E##bu = Bu ^ (~Ba & Be);                                                                  \
                                                                                                  \
        Ba = ROL64(THETA_X##V(A##bo, Ci, Do), 28);                                                \
        Be = ROL64(THETA_X##V(A##gu, Co, Du), 20);                                                \
        Bi = ROL64(THETA_X##V(A##ka, Cu, Da), 3);                                                 \
        Bo = ROL64(THETA_X##V(A##me, Ca, De), 45);                                                \
        Bu = ROL64(THETA_X##V(A##si, Ce, Di), 61);                                                \
        E##ga = Ba ^ (~Be & Bi);                                                                  \
        E##ge = Be ^ (~Bi & Bo);                                                                  \
        E##gi = Bi ^ (~Bo & Bu);                                                                  \
        E##go = Bo ^ (~Bu & Ba);                                                                  \
        E##gu = Bu ^ (~Ba & Be);                                                                  \
                                                                                                  \
        Ba = ROL64(THETA_X##V(A##be, Ca, De), 1);                                                 \
        Be = ROL64(THETA_X##V(A##gi, Ce, Di), 6);                                                 \
        Bi = ROL64(THETA_X##V(A##ko, Ci, Do), 25);                                                \
        Bo = ROL64(THETA_X##V(A##mu, Co, Du), 8);                                                 \
        Bu = ROL64(THETA_X##V(A##sa, Cu, Da), 18);                                                \
        E##ka = Ba ^ (~Be & Bi);                                                                  \
        E##ke = Be ^ (~Bi & Bo);                                                                  \
        E##ki = Bi ^ (~Bo & Bu);                                                                  \
        E##ko = Bo ^ (~Bu & Ba);                                                                  \
        E##ku = Bu ^ (~Ba & Be);                                                                  \
                                                                                                  \
        Ba = ROL64(THETA_X##V(A##bu, Co, Du), 27);                                                \
        Be = ROL64(THETA_X##V(A##ga, Cu, Da), 36);                                                \
        Bi = ROL64(THETA_X##V(A##ke, Ca, De), 10);                                                \
        Bo = ROL64(THETA_X##V(A##mi, Ce, Di), 15);                                                \
        Bu = ROL64(THETA_X##V(A##so, Ci, Do), 56);                                                \
        E##ma = Ba ^ (~Be & Bi);                                                                  \
        E##me = Be ^ (~Bi & Bo);                                                                  \
        E##mi = Bi ^ (~Bo & Bu);                                                                  \
        E##mo = Bo ^ (~Bu & Ba);                                                                  \
        E##mu = Bu ^ (~Ba & Be);                                                                  \
                                                                                                  \
        Ba = ROL64(THETA_X##V(A##bi, Ce, Di), 62);                                                \
        Be = ROL64(THETA_X##V(A##go, Ci, Do), 55);                                                \
        Bi = ROL64(THETA_X##V(A##ku, Co, Du), 39);                                                \
        Bo = ROL64(THETA_X##V(A##ma, Cu, Da), 41);                                                \
        Bu = ROL64(THETA_X##V(A##se, Ca, De), 2);                                                 \
        E##sa = Ba ^ (~Be & Bi);                                                                  \
        E##se = Be ^ (~Bi & Bo);                                                                  \
        E##si = Bi ^ (~Bo & Bu);                                                                  \
        E##so = Bo ^ (~Bu & Ba);                                                                  \
        E##su = Bu ^ (~Ba & Be);                                                                  \
    } while (0)

#define KECCAK_LANES(P)                                                                           \
    P##ba, P##be, P##bi, P##bo, P##bu, P##ga, P##ge, P##gi, P##go, P##gu, P##ka, P##ke, P##ki,    \
        P##ko, P##ku, P##ma, P##me, P##mi, P##mo, P##mu, P##sa, P##se, P##si, P##so, P##su

/* Defines `static void NAME(T *s)`: keccak-f[1600] on the 25 lanes s[0..24] of type T (uint64_t
 * or a vector of uint64_t, one independent state per vector element). */
#define DEFINE_KECCAK_F1600(NAME, T, ATTRS, V)                                                    \
    ATTRS static void NAME(T *s)                                                                  \
    {                                                                                             \
        T KECCAK_LANES(A), KECCAK_LANES(E);                                                       \
        T Ca, Ce, Ci, Co, Cu, Da, De, Di, Do, Du, Ba, Be, Bi, Bo, Bu;                             \
        Aba = s[0]; Abe = s[1]; Abi = s[2]; Abo = s[3]; Abu = s[4];                               \
        Aga = s[5]; Age = s[6]; Agi = s[7]; Ago = s[8]; Agu = s[9];                               \
        Aka = s[10]; Ake = s[11]; Aki = s[12]; Ako = s[13]; Aku = s[14];                          \
        Ama = s[15]; Ame = s[16]; Ami = s[17]; Amo = s[18]; Amu = s[19];                          \
        Asa = s[20]; Ase = s[21]; Asi = s[22]; Aso = s[23]; Asu = s[24];                          \
        for (int round = 0; round < 24; round += 2) {                                             \
            KECCAK_ROUND(A, E, keccak_rc[round], V);                                              \
            KECCAK_ROUND(E, A, keccak_rc[round + 1], V);                                          \
        }                                                                                         \
        s[0] = Aba; s[1] = Abe; s[2] = Abi; s[3] = Abo; s[4] = Abu;                               \
        s[5] = Aga; s[6] = Age; s[7] = Agi; s[8] = Ago; s[9] = Agu;                               \
        s[10] = Aka; s[11] = Ake; s[12] = Aki; s[13] = Ako; s[14] = Aku;                          \
        s[15] = Ama; s[16] = Ame; s[17] = Ami; s[18] = Amo; s[19] = Amu;                          \
        s[20] = Asa; s[21] = Ase; s[22] = Asi; s[23] = Aso; s[24] = Asu;                          \
    }

DEFINE_KECCAK_F1600(keccak_f1600, uint64_t, , 2)

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#ifdef FM_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void
store64(unsigned char *p, uint64_t v)
{
#ifdef FM_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

#define KECCAK256_RATE 136 /* bytes: 1600 - 2 * 256 bits */
#define HASH_LEN 32

/* Keccak-256 of len bytes (original Keccak padding: 0x01, zeros, 0x80). */
static void
keccak256_raw(const unsigned char *data, size_t len, unsigned char out[HASH_LEN])
{
    uint64_t s[25] = {0};
    unsigned char last[KECCAK256_RATE];
    while (len >= KECCAK256_RATE) {
        for (int k = 0; k < KECCAK256_RATE / 8; k++) {
            s[k] ^= load64(data + 8 * k);
        }
        keccak_f1600(s);
        data += KECCAK256_RATE;
        len -= KECCAK256_RATE;
    }
    memset(last, 0, sizeof last);
    if (len) {
        memcpy(last, data, len);
    }
    last[len] ^= 0x01;
    last[KECCAK256_RATE - 1] ^= 0x80;
    for (int k = 0; k < KECCAK256_RATE / 8; k++) {
        s[k] ^= load64(last + 8 * k);
    }
    keccak_f1600(s);
    for (int k = 0; k < HASH_LEN / 8; k++) {
        store64(out + 8 * k, s[k]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Node hashing: keccak256(0x01 ‖ left ‖ right), a single block. A node is prepared as a 72-byte
 * block (lanes 0..8 of the padded message): 0x01, left, right, 0x01 (padding), six zero bytes;
 * lane 16 always holds the final 0x80 of the padding and every other lane is zero.
 */

#define NODE_BLOCK 72
#define PAD_END_LANE 16
#define PAD_END_BIT 0x8000000000000000ULL

typedef void (*hash_nodes_fn)(const unsigned char *blocks, unsigned char *out, Py_ssize_t count);

static void
hash_nodes_scalar(const unsigned char *blocks, unsigned char *out, Py_ssize_t count)
{
    for (Py_ssize_t j = 0; j < count; j++) {
        uint64_t s[25] = {0};
        const unsigned char *b = blocks + NODE_BLOCK * j;
        for (int k = 0; k < NODE_BLOCK / 8; k++) {
            s[k] = load64(b + 8 * k);
        }
        s[PAD_END_LANE] = PAD_END_BIT;
        keccak_f1600(s);
        for (int k = 0; k < HASH_LEN / 8; k++) {
            store64(out + HASH_LEN * j + 8 * k, s[k]);
        }
    }
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(ISOPERP_NO_SIMD)
#define HAVE_X86_SIMD 1

typedef uint64_t v4u64 __attribute__((vector_size(32)));
typedef uint64_t v8u64 __attribute__((vector_size(64)));

#define ATTR_AVX2 __attribute__((target("avx2")))
#define ATTR_AVX512 __attribute__((target("avx2,avx512f,avx512vl")))

DEFINE_KECCAK_F1600(keccak_f1600_x4_avx2, v4u64, ATTR_AVX2, 2)
DEFINE_KECCAK_F1600(keccak_f1600_x4_avx512, v4u64, ATTR_AVX512, 3)
DEFINE_KECCAK_F1600(keccak_f1600_x8_avx512, v8u64, ATTR_AVX512, 3)

static const unsigned char zero_block[NODE_BLOCK];

/* Hashes up to W nodes (count <= W) in one W-way permutation; unused lanes hash zeros. */
#define DEFINE_HASH_NODES_WIDE(NAME, PERMUTE, V, W, ATTRS)                                        \
    ATTRS static void NAME(const unsigned char *blocks, unsigned char *out, Py_ssize_t count)     \
    {                                                                                             \
        V s[25];                                                                                  \
        const unsigned char *b[W];                                                                \
        for (int j = 0; j < W; j++) {                                                             \
            b[j] = j < count ? blocks + NODE_BLOCK * j : zero_block;                              \
        }                                                                                         \
        for (int k = 0; k < 25; k++) {                                                            \
            s[k] = (V){0};                                                                        \
        }                                                                                         \
        for (int k = 0; k < NODE_BLOCK / 8; k++) {                                                \
            V lane;                                                                               \
            for (int j = 0; j < W; j++) {                                                         \
                lane[j] = load64(b[j] + 8 * k);                                                   \
            }                                                                                     \
            s[k] = lane;                                                                          \
        }                                                                                         \
        s[PAD_END_LANE] = s[PAD_END_LANE] + PAD_END_BIT;                                          \
        PERMUTE(s);                                                                               \
        for (int j = 0; j < W && j < count; j++) {                                                \
            for (int k = 0; k < HASH_LEN / 8; k++) {                                              \
                store64(out + HASH_LEN * j + 8 * k, s[k][j]);                                     \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_HASH_NODES_WIDE(hash4_avx2, keccak_f1600_x4_avx2, v4u64, 4, ATTR_AVX2)
DEFINE_HASH_NODES_WIDE(hash4_avx512, keccak_f1600_x4_avx512, v4u64, 4, ATTR_AVX512)
DEFINE_HASH_NODES_WIDE(hash8_avx512, keccak_f1600_x8_avx512, v8u64, 8, ATTR_AVX512)

/* Measured on a Sapphire Rapids Xeon: scalar ~310 ns a permutation, AVX2 4-way ~440 ns, AVX-512
 * 4-way (YMM) ~240 ns, AVX-512 8-way (ZMM) ~340 ns. So with AVX2 a lone node goes through the
 * scalar permutation and 2..4 nodes through one 4-way one; with AVX-512, 1..4 nodes take one
 * 4-way permutation and 5..8 nodes one 8-way permutation. */
static void
hash_nodes_avx2(const unsigned char *blocks, unsigned char *out, Py_ssize_t count)
{
    while (count >= 2) {
        Py_ssize_t n = count < 4 ? count : 4;
        hash4_avx2(blocks, out, n);
        blocks += NODE_BLOCK * n;
        out += HASH_LEN * n;
        count -= n;
    }
    hash_nodes_scalar(blocks, out, count);
}

static void
hash_nodes_avx512(const unsigned char *blocks, unsigned char *out, Py_ssize_t count)
{
    while (count >= 5) {
        Py_ssize_t n = count < 8 ? count : 8;
        hash8_avx512(blocks, out, n);
        blocks += NODE_BLOCK * n;
        out += HASH_LEN * n;
        count -= n;
    }
    if (count > 0) {
        hash4_avx512(blocks, out, count);
    }
}
#endif

typedef struct {
    const char *name;
    hash_nodes_fn fn;
    int available;
} node_impl;

static node_impl node_impls[] = {
    {"scalar", hash_nodes_scalar, 1},
#ifdef HAVE_X86_SIMD
    {"avx2", hash_nodes_avx2, 0},
    {"avx512", hash_nodes_avx512, 0},
#endif
};

#define N_IMPLS ((int)(sizeof node_impls / sizeof node_impls[0]))

static int current_impl = 0;

static void
detect_impls(void)
{
#ifdef HAVE_X86_SIMD
    __builtin_cpu_init();
    /* libgcc / compiler-rt check that the OS saves the YMM / ZMM state too (XGETBV). */
    node_impls[1].available = __builtin_cpu_supports("avx2");
    node_impls[2].available = node_impls[1].available && __builtin_cpu_supports("avx512f") &&
                              __builtin_cpu_supports("avx512vl");
#endif
    for (int i = 0; i < N_IMPLS; i++) {
        if (node_impls[i].available) {
            current_impl = i;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Python functions
 */

static PyObject *
py_keccak256(PyObject *module, PyObject *data)
{
    Py_buffer view;
    unsigned char out[HASH_LEN];
    if (PyBytes_CheckExact(data)) { /* the common case: no buffer export */
        keccak256_raw((const unsigned char *)PyBytes_AS_STRING(data),
                      (size_t)PyBytes_GET_SIZE(data), out);
        return PyBytes_FromStringAndSize((const char *)out, HASH_LEN);
    }
    if (PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "keccak256() needs a bytes-like object, not str");
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len >= 65536) {
        Py_BEGIN_ALLOW_THREADS
        keccak256_raw((const unsigned char *)view.buf, (size_t)view.len, out);
        Py_END_ALLOW_THREADS
    } else {
        keccak256_raw((const unsigned char *)view.buf, (size_t)view.len, out);
    }
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, HASH_LEN);
}

/* A dirty node: its index, its int key (an owned reference) and, above the leaves, the value the
 * flush just gave it (empty: popped, i.e. the zero hash of its height; else hash). */
typedef struct {
    uint64_t index;
    PyObject *key;
    int empty;
    unsigned char hash[HASH_LEN];
} dirty_item;

static int
compare_items(const void *a, const void *b)
{
    uint64_t x = ((const dirty_item *)a)->index, y = ((const dirty_item *)b)->index;
    return (x > y) - (x < y);
}

static void
release_items(dirty_item *items, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_CLEAR(items[i].key);
    }
}

/* Copies the value of child `index` (levels[h].get(index, zero)) to dst and tells whether it is
 * the zero object. A dirty child above the leaves (item != NULL, known) has the value the flush
 * stored one level down, so it is not looked up again; any other child is looked up in `level`,
 * through the key the caller holds or a temporary int, and must be 32 bytes. */
static int
read_child(PyObject *level, const dirty_item *item, int known, uint64_t index, PyObject *zero,
           unsigned char *dst, int *is_zero)
{
    PyObject *value;
    if (item != NULL && known) {
        *is_zero = item->empty;
        memcpy(dst, item->empty ? PyBytes_AS_STRING(zero) : (const char *)item->hash, HASH_LEN);
        return 0;
    }
    if (item != NULL) {
        value = PyDict_GetItemWithError(level, item->key);
    } else {
        PyObject *tmp = PyLong_FromUnsignedLongLong(index);
        if (tmp == NULL) {
            return -1;
        }
        value = PyDict_GetItemWithError(level, tmp);
        Py_DECREF(tmp);
    }
    if (value == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        value = zero;
    }
    *is_zero = value == zero;
    if (!*is_zero) {
        if (!PyBytes_Check(value)) {
            PyErr_Format(PyExc_TypeError, "tree node %llu must be bytes, not %.100s",
                         (unsigned long long)index, Py_TYPE(value)->tp_name);
            return -1;
        }
        if (PyBytes_GET_SIZE(value) != HASH_LEN) {
            PyErr_Format(PyExc_ValueError, "tree node %llu must be 32 bytes, got %zd",
                         (unsigned long long)index, PyBytes_GET_SIZE(value));
            return -1;
        }
    }
    /* copied at once: no borrowed reference is kept across another dict operation */
    memcpy(dst, PyBytes_AS_STRING(value), HASH_LEN);
    return 0;
}

/* Reads the dirty set into `items` sorted by index; returns the count or -1. */
static Py_ssize_t
read_dirty(PyObject *dirty, dirty_item *items, Py_ssize_t capacity)
{
    Py_ssize_t n = 0;
    PyObject *it = PyObject_GetIter(dirty), *key;
    if (it == NULL) {
        return -1;
    }
    while ((key = PyIter_Next(it)) != NULL) {
        if (!PyLong_Check(key)) {
            PyErr_Format(PyExc_TypeError, "dirty index must be an int, not %.100s",
                         Py_TYPE(key)->tp_name);
            Py_DECREF(key);
            goto error;
        }
        unsigned long long index = PyLong_AsUnsignedLongLong(key);
        if (index == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "dirty index must be in [0, 2**64)");
            Py_DECREF(key);
            goto error;
        }
        if (n == capacity) {
            PyErr_SetString(PyExc_RuntimeError, "dirty set changed size during flush");
            Py_DECREF(key);
            goto error;
        }
        items[n].index = (uint64_t)index;
        items[n].key = key; /* the reference from the iterator: the set's own int, reused */
        n++;
    }
    if (PyErr_Occurred()) {
        goto error;
    }
    Py_DECREF(it);
    qsort(items, (size_t)n, sizeof *items, compare_items);
    return n;
error:
    Py_DECREF(it);
    release_items(items, n);
    return -1;
}

/* One height: the parents of the n dirty nodes in cur (sorted, distinct) are written to next
 * (sorted, distinct, owned keys) and get their new value in `above`; returns their count or -1.
 * known: cur holds the values of its nodes (every height but the leaves). */
static Py_ssize_t
flush_level(PyObject *below, PyObject *above, PyObject *zero, const dirty_item *cur,
            Py_ssize_t n, int known, dirty_item *next, unsigned char *blocks,
            unsigned char *digests, Py_ssize_t *slots)
{
    Py_ssize_t m = 0, pending = 0;
    for (Py_ssize_t j = 0; j < n;) {
        const dirty_item *left = NULL, *right = NULL;
        uint64_t parent = cur[j].index >> 1;
        if (cur[j].index & 1) {
            right = &cur[j++];
        } else {
            left = &cur[j++];
            if (j < n && cur[j].index == (left->index | 1)) {
                right = &cur[j++];
            }
        }
        PyObject *parent_key = PyLong_FromUnsignedLongLong(parent);
        if (parent_key == NULL) {
            goto error;
        }
        dirty_item *item = &next[m++]; /* owns parent_key from here on */
        item->index = parent;
        item->key = parent_key;
        item->empty = 1;

        unsigned char *block = blocks + NODE_BLOCK * pending;
        int left_zero, right_zero;
        if (read_child(below, left, known, parent << 1, zero, block + 1, &left_zero) < 0 ||
            read_child(below, right, known, (parent << 1) | 1, zero, block + 1 + HASH_LEN,
                       &right_zero) < 0) {
            goto error;
        }
        if (left_zero && right_zero) { /* above.pop(parent, None) */
            PyObject *old = PyDict_GetItemWithError(above, parent_key);
            if (old == NULL ? PyErr_Occurred() != NULL : PyDict_DelItem(above, parent_key) < 0) {
                goto error;
            }
            continue;
        }
        item->empty = 0;
        slots[pending++] = m - 1;
    }
    /* above[parent] = keccak256(0x01 ‖ left ‖ right) for every parent not popped */
    node_impls[current_impl].fn(blocks, digests, pending);
    for (Py_ssize_t i = 0; i < pending; i++) {
        dirty_item *item = &next[slots[i]];
        memcpy(item->hash, digests + HASH_LEN * i, HASH_LEN);
        PyObject *value = PyBytes_FromStringAndSize((const char *)item->hash, HASH_LEN);
        if (value == NULL) {
            goto error;
        }
        int rc = PyDict_SetItem(above, item->key, value);
        Py_DECREF(value);
        if (rc < 0) {
            goto error;
        }
    }
    return m;
error:
    release_items(next, m);
    return -1;
}

static int
check_hash(PyObject *obj, const char *what, Py_ssize_t h)
{
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s[%zd] must be bytes, not %.100s", what, h,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyBytes_GET_SIZE(obj) != HASH_LEN) {
        PyErr_Format(PyExc_ValueError, "%s[%zd] must be 32 bytes, got %zd", what, h,
                     PyBytes_GET_SIZE(obj));
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(flush_doc,
"flush(levels, zeros, dirty, depth)\n--\n\n"
"SparseMerkleTree._flush_python in C. For each height h < depth: parents = {i >> 1 for i in\n"
"dirty}; for each parent, left/right = levels[h].get(2p / 2p+1, zeros[h]); if both are\n"
"zeros[h] (the object), levels[h+1].pop(p, None), else levels[h+1][p] =\n"
"keccak256(0x01 + left + right); dirty = parents. Parents are visited in increasing order.\n"
"levels: list of dict (at least depth+1), zeros: tuple of 32-byte bytes (at least depth+1),\n"
"dirty: set of ints in [0, 2**64) (not modified). Raises TypeError / ValueError on malformed\n"
"input; levels may then be partly updated, as with the Python loop.");

static PyObject *
py_flush(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "flush() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *levels = args[0], *zeros = args[1], *dirty = args[2];
    if (!PyList_Check(levels)) {
        PyErr_SetString(PyExc_TypeError, "flush(): levels must be a list");
        return NULL;
    }
    if (!PyTuple_Check(zeros)) {
        PyErr_SetString(PyExc_TypeError, "flush(): zeros must be a tuple");
        return NULL;
    }
    if (!PyAnySet_Check(dirty)) {
        PyErr_SetString(PyExc_TypeError, "flush(): dirty must be a set");
        return NULL;
    }
    if (!PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "flush(): depth must be an int");
        return NULL;
    }
    Py_ssize_t depth = PyLong_AsSsize_t(args[3]);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (depth < 0 || depth >= PyList_GET_SIZE(levels) || depth >= PyTuple_GET_SIZE(zeros)) {
        PyErr_Format(PyExc_ValueError,
                     "flush(): depth %zd needs at least depth + 1 levels and zeros", depth);
        return NULL;
    }
    for (Py_ssize_t h = 0; h < depth; h++) {
        if (check_hash(PyTuple_GET_ITEM(zeros, h), "zeros", h) < 0) {
            return NULL;
        }
    }
    Py_ssize_t capacity = PySet_GET_SIZE(dirty);
    if (capacity == 0 || depth == 0) {
        Py_RETURN_NONE;
    }

    /* cur, next: the dirty nodes of this height and of the one above (two halves of `items`);
     * blocks/digests/slots: the nodes of one height to hash (at most one per parent, so at most
     * capacity of them), slots[i] being the position in next of the node of blocks[i]. */
    dirty_item *items = PyMem_Calloc((size_t)capacity * 2, sizeof(dirty_item));
    unsigned char *blocks = PyMem_Calloc((size_t)capacity, NODE_BLOCK + HASH_LEN);
    Py_ssize_t *slots = PyMem_Calloc((size_t)capacity, sizeof(Py_ssize_t));
    PyObject *result = NULL;
    dirty_item *cur = items, *next = items + capacity;
    unsigned char *digests;
    Py_ssize_t n = 0;
    if (items == NULL || blocks == NULL || slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    digests = blocks + (size_t)capacity * NODE_BLOCK;
    for (Py_ssize_t i = 0; i < capacity; i++) { /* the constant bytes of the padded blocks */
        blocks[NODE_BLOCK * i] = 0x01;                    /* node salt */
        blocks[NODE_BLOCK * i + 1 + 2 * HASH_LEN] = 0x01; /* first padding byte */
    }
    n = read_dirty(dirty, cur, capacity);
    if (n < 0) {
        n = 0;
        goto done;
    }
    for (Py_ssize_t h = 0; h < depth; h++) {
        /* the list is re-read every height: a look-up may run Python code (an int subclass's
         * __eq__ as a key), which could change it */
        if (h + 1 >= PyList_GET_SIZE(levels)) {
            PyErr_SetString(PyExc_RuntimeError, "flush(): levels shrank during the flush");
            goto done;
        }
        PyObject *below = PyList_GET_ITEM(levels, h), *above = PyList_GET_ITEM(levels, h + 1);
        if (!PyDict_CheckExact(below) || !PyDict_CheckExact(above)) {
            PyErr_Format(PyExc_TypeError, "flush(): levels[%zd] and levels[%zd] must be dicts",
                         h, h + 1);
            goto done;
        }
        if (below == above) {
            PyErr_Format(PyExc_ValueError, "flush(): levels[%zd] is levels[%zd]", h, h + 1);
            goto done;
        }
        /* strong references, for the same reason */
        Py_INCREF(below);
        Py_INCREF(above);
        Py_ssize_t m = flush_level(below, above, PyTuple_GET_ITEM(zeros, h), cur, n, h > 0, next,
                                   blocks, digests, slots);
        Py_DECREF(below);
        Py_DECREF(above);
        if (m < 0) {
            goto done;
        }
        release_items(cur, n);
        dirty_item *swap = cur;
        cur = next;
        next = swap;
        n = m;
    }
    result = Py_NewRef(Py_None);
done:
    if (items != NULL) {
        release_items(cur, n);
    }
    PyMem_Free(items);
    PyMem_Free(blocks);
    PyMem_Free(slots);
    return result;
}

static PyObject *
py_impl(PyObject *module, PyObject *unused)
{
    return PyUnicode_FromString(node_impls[current_impl].name);
}

static PyObject *
py_impls(PyObject *module, PyObject *unused)
{
    PyObject *names = PyList_New(0), *result;
    if (names == NULL) {
        return NULL;
    }
    for (int i = 0; i < N_IMPLS; i++) {
        if (!node_impls[i].available) {
            continue;
        }
        PyObject *name = PyUnicode_FromString(node_impls[i].name);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(name);
    }
    result = PyList_AsTuple(names);
    Py_DECREF(names);
    return result;
}

static PyObject *
py_set_impl(PyObject *module, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "set_impl() needs a str");
        return NULL;
    }
    for (int i = 0; i < N_IMPLS; i++) {
        if (node_impls[i].available &&
            PyUnicode_CompareWithASCIIString(name, node_impls[i].name) == 0) {
            current_impl = i;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "no node-hashing kernel %R on this machine", name);
    return NULL;
}

PyDoc_STRVAR(keccak256_doc,
"keccak256(data, /)\n--\n\n"
"The 32-byte Keccak-256 digest (original padding, as Ethereum) of a bytes-like object.");

static PyMethodDef fastmerkle_methods[] = {
    {"keccak256", (PyCFunction)py_keccak256, METH_O, keccak256_doc},
    {"flush", (PyCFunction)(void (*)(void))py_flush, METH_FASTCALL, flush_doc},
    {"impl", py_impl, METH_NOARGS, "The node-hashing kernel in use."},
    {"impls", py_impls, METH_NOARGS, "The node-hashing kernels this machine can run."},
    {"set_impl", py_set_impl, METH_O, "Selects a node-hashing kernel (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastmerkle_module = {
    PyModuleDef_HEAD_INIT,
    "isoperp.tree._fastmerkle",
    "keccak256 and SparseMerkleTree's flush in C (optional; isoperp.tree.merkle falls back to "
    "Python).",
    -1,
    fastmerkle_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__fastmerkle(void)
{
    detect_impls();
    return PyModule_Create(&fastmerkle_module);
}
