#!/bin/sh
# Fails if a relative Markdown link ](file.md) or ](file.md#anchor) points at a missing file.
# Run from the project directory: sh test/links.sh
status=0
for page in *.md; do
  for target in $(grep -o '](\([^)#]*\)[^)]*)' "$page" | sed 's/^](\([^)#]*\).*/\1/'); do
    case "$target" in
      http://*|https://*|mailto:*|'') continue ;;
    esac
    if [ ! -e "$target" ]; then
      echo "$page: broken link to $target" >&2
      status=1
    fi
  done
done
[ "$status" -eq 0 ] && echo "links ok"
exit "$status"
