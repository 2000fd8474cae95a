#!/bin/sh
# Refuses to let the stack start while a secret still holds its .env.example placeholder: exits 1
# with one line naming every variable whose value starts with `change-me`. Run by the one-shot
# `check-secrets` service, which every service waits for (docker-compose.yml). A throwaway stack
# (a test, a demo on one laptop) may keep the placeholders with W2S_STACK_PROFILE=test.
set -eu

placeholders=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=change-me.*/\1/p' | sort | tr '\n' ' ')
if [ -z "$placeholders" ]; then
  echo "check-secrets: no placeholder secret"
  exit 0
fi
if [ "${W2S_STACK_PROFILE:-}" = "test" ]; then
  echo "check-secrets: W2S_STACK_PROFILE=test: placeholders accepted (${placeholders% })"
  exit 0
fi
echo "error: infra/.env still holds change-me placeholders for ${placeholders% }: replace each with a secret (e.g. openssl rand -hex 24), or set W2S_STACK_PROFILE=test for a throwaway stack" >&2
exit 1
