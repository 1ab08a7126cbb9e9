/* The guest command carried on the kernel command line. */
#include "gcs/gcs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GCS_CMD_PARAM "gcs.cmd="

/*
 * Next word of a kernel command line, split the way the kernel does: blanks
 * separate words except inside double quotes, and the quotes themselves are
 * dropped. Copies the word into out (which must hold strlen(p) + 1) and
 * returns the rest, or NULL at the end.
 */
static const char *gcs_next_word(const char *p, char *out, bool *quoted)
{
	bool in_quote = false;

	*quoted = false;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (!*p)
		return NULL;
	for (; *p; p++) {
		if (*p == '"') {
			in_quote = !in_quote;
			*quoted = true;
			continue;
		}
		if (!in_quote && (*p == ' ' || *p == '\t' || *p == '\n'))
			break;
		*out++ = *p;
	}
	*out = '\0';
	return p;
}

int gcs_cmdline_command(const char *cmdline, struct gcs_command *cmd)
{
	size_t len = strlen(cmdline), used = 0;
	/* At most one word per two bytes, plus the terminating NULL. */
	size_t max_words = len / 2 + 2;
	char *word = malloc(len + 1), *param = NULL;
	const char *p = cmdline;
	bool quoted, after_dashes = false;
	int argc = 0;

	*cmd = (struct gcs_command){0};
	cmd->words = malloc(len + 1);
	cmd->argv = calloc(max_words, sizeof(char *));
	if (!word || !cmd->words || !cmd->argv)
		goto nomem;
	while ((p = gcs_next_word(p, word, &quoted))) {
		if (after_dashes) {
			size_t wl = strlen(word) + 1;

			memcpy(cmd->words + used, word, wl);
			cmd->argv[argc++] = cmd->words + used;
			used += wl;
		} else if (!quoted && strcmp(word, "--") == 0) {
			after_dashes = true;
		} else if (strncmp(word, GCS_CMD_PARAM, strlen(GCS_CMD_PARAM)) == 0) {
			free(param);
			param = strdup(word + strlen(GCS_CMD_PARAM));
			if (!param)
				goto nomem;
		}
	}
	free(word);
	if (argc) {
		free(param);
		return 0;
	}
	free(cmd->argv);
	free(cmd->words);
	cmd->argv = NULL;
	cmd->words = NULL;
	if (param && *param)
		cmd->script = param;
	else
		free(param);
	return 0;

nomem:
	free(word);
	free(param);
	gcs_command_free(cmd);
	return -ENOMEM;
}

void gcs_command_free(struct gcs_command *cmd)
{
	if (!cmd)
		return;
	free(cmd->argv);
	free(cmd->words);
	free(cmd->script);
	*cmd = (struct gcs_command){0};
}

char *gcs_read_cmdline(void)
{
	FILE *f = fopen("/proc/cmdline", "re");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	/* The x86 command line is at most 2048 bytes. */
	buf = malloc(4097);
	if (buf) {
		n = fread(buf, 1, 4096, f);
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}
