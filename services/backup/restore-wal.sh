#!/bin/sh
# PostgreSQL's restore_command: restore-wal.sh %f %p ARCHIVE_DIR
#
# Decompresses ARCHIVE_DIR/<name>.gz (written by archive-wal.sh) to the path PostgreSQL asks
# for. A missing file exits non-zero without a message: PostgreSQL asks for files that may not
# exist (the next segment, a newer timeline's history) and takes the failure as "not archived".
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: restore-wal.sh FILE_NAME TARGET_PATH ARCHIVE_DIR" >&2
    exit 2
fi
source="$3/$1.gz"
[ -f "$source" ] || exit 1
temp="$2.tmp"
gzip --decompress --stdout -- "$source" > "$temp"
mv -f -- "$temp" "$2"
