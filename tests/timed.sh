#!/bin/bash
# tests/timed.sh PROGRAM [ARGS...]: how automake runs each test program
# (LOG_COMPILER): the program's TAP output passes through, with two
# changes, and its exit status is kept.
#  - cmocka 1.1 writes a skipped test as "not ok N # SKIP", which TAP
#    readers count as a failure; it becomes "ok N # SKIP" (its reason was
#    printed before it).
#  - A last comment "# elapsed S s" gives the program's wall time, which
#    scripts/check lists per program.
t0=$(date +%s%N)
"$@" | sed -u 's/^not ok \([0-9][0-9]*\) # SKIP/ok \1 # SKIP/'
st=${PIPESTATUS[0]}
t1=$(date +%s%N)
echo "# elapsed $(( (t1 - t0) / 1000000000 )).$(( (t1 - t0) / 100000000 % 10 )) s"
exit "$st"
