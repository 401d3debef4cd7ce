#!/usr/bin/env bash
# Fails when a lower layer includes a header of a higher one.
# protocol/ may include only protocol/; storage/ protocol/ and storage/;
# daemon/ protocol/, storage/, daemon/; ctl/ anything but daemon/.
# Unit tests (*_test.cpp) may also use the shared helpers in tests/support/.
set -euo pipefail
root=${1:-$(dirname "$0")/..}
cd "$root"
status=0
check() {  # check FOLDER FORBIDDEN...
  local folder=$1; shift
  [ -d "$folder" ] || return 0
  for higher in "$@"; do
    if hits=$(grep -rnE "^#include \"$higher/" "$folder" --include='*.h' --include='*.cpp' --exclude='*_test.cpp'); then
      echo "layer violation: $folder/ includes $higher/:"
      echo "$hits"
      status=1
    fi
  done
}
check protocol storage config daemon ctl tests
check storage config daemon ctl tests
check config storage daemon ctl tests
check daemon ctl tests
check ctl daemon tests
if [ $status -eq 0 ]; then echo "layers ok"; fi
exit $status
