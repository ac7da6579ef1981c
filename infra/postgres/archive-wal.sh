#!/bin/sh
# PostgreSQL's archive_command: archive-wal.sh %p %f ARCHIVE_DIR
#
# Stores one WAL segment (or history/backup file) as ARCHIVE_DIR/<name>.gz, atomically: the
# compressed copy is written to a temporary name, fsynced, then linked into place. `ln` refuses
# an existing target, so an archived file is never overwritten, even by a concurrent copy.
# Exit 0 only once the file is durably archived: any non-zero status makes PostgreSQL keep the
# segment and retry, so a full or unwritable archive delays archiving but loses nothing.
# A target that already exists with identical content counts as archived (PostgreSQL retries a
# segment whose earlier attempt succeeded just before a crash); different content is an error.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: archive-wal.sh SOURCE_PATH FILE_NAME ARCHIVE_DIR" >&2
    exit 2
fi
source_path=$1
name=$2
archive_dir=$3
target="$archive_dir/$name.gz"

if [ -e "$target" ]; then
    if gzip --decompress --stdout -- "$target" | cmp --silent -- - "$source_path"; then
        exit 0
    fi
    echo "archive-wal: $target already exists with different content; refusing to overwrite" >&2
    exit 1
fi

temp="$archive_dir/.$name.gz.tmp.$$"
trap 'rm -f -- "$temp" 2>/dev/null' EXIT
# gzip (always installed, also in the postgres image) at its fastest level keeps up with a busy
# server on one core; a WAL segment of 16 MB compresses in a fraction of a second.
gzip --fast --stdout -- "$source_path" > "$temp"
sync -- "$temp"
if ! ln -- "$temp" "$target"; then
    echo "archive-wal: could not link $target" >&2
    exit 1
fi
# The new directory entry must be durable before PostgreSQL may recycle the segment.
sync -- "$archive_dir"
