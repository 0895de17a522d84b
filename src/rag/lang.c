/*
 * lang.c — ISO 639-1 codes and their text-search configurations (lang.h).
 *
 * Two sorted tables searched with bsearch: every ISO 639-1 code, and the
 * codes PostgreSQL 15 ships a stemmer for (`\dF`).
 */
#include "rag/lang.h"

#include <stdlib.h>
#include <string.h>

/* ISO 639-1, sorted. */
static const char k_codes[][3] = {
	"aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bi", "bm", "bn",
	"bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de", "dv", "dz", "ee", "el",
	"en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy", "ga", "gd", "gl", "gn", "gu", "gv",
	"ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it",
	"iu", "ja", "jv", "ka", "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky",
	"la", "lb", "lg", "li", "ln", "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt",
	"my", "na", "nb", "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa",
	"pi", "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk", "sl",
	"sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti", "tk", "tl", "tn",
	"to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo", "wa", "wo", "xh", "yi", "yo",
	"za", "zh", "zu",
};

typedef struct stem {
	char code[3];
	const char *config;
} stem_t;

/* The codes PostgreSQL 15 stems, sorted by code. */
static const stem_t k_stems[] = {
	{"ar", "arabic"},     {"ca", "catalan"},   {"da", "danish"},     {"de", "german"},     {"el", "greek"},
	{"en", "english"},    {"es", "spanish"},   {"eu", "basque"},     {"fi", "finnish"},    {"fr", "french"},
	{"ga", "irish"},      {"hi", "hindi"},     {"hu", "hungarian"},  {"hy", "armenian"},   {"id", "indonesian"},
	{"it", "italian"},    {"lt", "lithuanian"}, {"nb", "norwegian"}, {"ne", "nepali"},     {"nl", "dutch"},
	{"nn", "norwegian"},  {"no", "norwegian"}, {"pt", "portuguese"}, {"ro", "romanian"},   {"ru", "russian"},
	{"sr", "serbian"},    {"sv", "swedish"},   {"ta", "tamil"},      {"tr", "turkish"},    {"yi", "yiddish"},
};

static int cmp_code(const void *key, const void *elem)
{
	return strcmp(key, elem);
}

bool nb_lang_valid(const char *code)
{
	if (!code || strlen(code) != 2)
		return false;
	return bsearch(code, k_codes, sizeof k_codes / sizeof k_codes[0], sizeof k_codes[0], cmp_code) != NULL;
}

const char *nb_lang_ts_config(const char *code)
{
	if (!code || strlen(code) != 2)
		return "simple";
	const stem_t *s = bsearch(code, k_stems, sizeof k_stems / sizeof k_stems[0], sizeof k_stems[0], cmp_code);
	return s ? s->config : "simple";
}
