#!/usr/bin/env bash
# Run dockd's fuzz targets one after the other, each for SECONDS (default 600).
#
#   fuzz/run.sh [SECONDS] [TARGET ...]      TARGET: id_file names config (default: all)
#
# Prints, per target, the inputs executed (libFuzzer's stat::number_of_executed_units,
# summed over restarts), the time taken, and every crash and hang found, with the file
# holding its input. Exits 1 when any target found a crash or hang, 2 when a target
# could not run at all.
#
# A crash does not end a target's time: the target is restarted for the rest of it,
# told (FUZZ_KNOWN_FAILURES) to let that failure's signature pass, so one shallow bug
# cannot hide a deeper one. A hang (an input taking more than 10 s) is recorded and the
# target restarted the same way. Everything a run writes goes to fuzz/artifacts/<time>/;
# inputs that reach new code are kept in fuzz/corpus/<target>/found/ for the next run.
#
# Reproduce a finding:  .venv/bin/python fuzz/fuzz_<target>.py fuzz/artifacts/.../crash-<sha1>
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(id_file names config)
py=${FUZZ_PYTHON:-$repo/.venv/bin/python}
max_restarts=${FUZZ_MAX_RESTARTS:-25}

if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: fuzz/run.sh [SECONDS] [id_file|names|config ...]" >&2
	exit 64
fi
for t in "${targets[@]}"; do
	if [ ! -f "$here/fuzz_$t.py" ]; then
		echo "fuzz/run.sh: no target '$t' (there is no fuzz/fuzz_$t.py); targets: id_file names config" >&2
		exit 64
	fi
done
if [ ! -x "$py" ]; then
	echo "fuzz/run.sh: no Python at $py; run 'make venv' first (or set FUZZ_PYTHON)" >&2
	exit 2
fi

# atheris: a binary wheel exists for CPython 3.11 on x86_64 Linux (manylinux2014), which
# bundles libFuzzer, so no compiler is needed there.
if ! "$py" -c 'import atheris' 2>/dev/null; then
	echo "installing atheris into $(dirname "$(dirname "$py")")"
	if ! "$py" -m pip install --quiet --only-binary=atheris 'atheris==3.0.0'; then
		# No wheel for this platform: build from source against the system's clang and
		# libFuzzer (Debian 12 package names; needs root for apt-get).
		echo "no atheris wheel for this platform: building it with clang and libFuzzer"
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
		fi
		LIBFUZZER_LIB=$(clang -print-file-name="libclang_rt.fuzzer_no_main-$(uname -m).a") \
			CLANG_BIN=$(command -v clang) \
			"$py" -m pip install --quiet --no-binary=atheris 'atheris==3.0.0' || {
			echo "fuzz/run.sh: cannot install atheris (see fuzz/README.md)" >&2
			exit 2
		}
	fi
fi

"$py" "$here/make_seeds.py" "$here/corpus" >/dev/null || exit 2
run_dir="$here/artifacts/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
echo "fuzzing ${targets[*]} for ${seconds}s each; logs and findings in ${run_dir#"$repo"/}"

summary=()
status=0
for t in "${targets[@]}"; do
	out="$run_dir/$t"
	known="$out/known-failures.txt"
	found="$here/corpus/$t/found"
	mkdir -p "$out" "$found"
	: >"$known"
	start=$(date +%s)
	deadline=$((start + seconds))
	executed=0
	crashes=()
	hangs=()
	broken=""
	attempt=0
	while :; do
		now=$(date +%s)
		left=$((deadline - now))
		[ "$left" -gt 0 ] || break
		if [ "$attempt" -ge "$max_restarts" ]; then
			echo "  $t: stopped after $attempt restarts" >&2
			break
		fi
		log="$out/run-$attempt.log"
		rc=0
		FUZZ_KNOWN_FAILURES="$known" nice -n 10 "$py" "$here/fuzz_$t.py" \
			-max_total_time="$left" -timeout=10 -print_final_stats=1 \
			-artifact_prefix="$out/" -dict="$here/corpus/$t.dict" \
			"$found" "$here/corpus/$t/seeds" >"$log" 2>&1 || rc=$?
		n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
		attempt=$((attempt + 1))
		if [ -z "$n" ]; then
			broken="did not start or died without stats (exit $rc); see ${log#"$repo"/}"
			break
		fi
		executed=$((executed + n))
		[ "$rc" -ne 0 ] || break
		unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		unit=${unit#"$repo"/}
		if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
			hangs+=("${unit:-?} (log ${log#"$repo"/})")
		else
			sig=$(sed -n 's/^FUZZ-SIGNATURE: //p' "$log" | tail -1)
			if [ -z "$sig" ]; then
				# not a Python exception: a deadly signal, out of memory, a leak
				sig=$(grep -m1 -o 'ERROR: libFuzzer: .*' "$log" || echo "exit $rc")
			fi
			crashes+=("$sig: ${unit:-?} (log ${log#"$repo"/})")
			echo "$sig" >>"$known"
		fi
	done
	took=$(($(date +%s) - start))
	line="$t: $executed inputs in ${took}s, ${#crashes[@]} crash(es), ${#hangs[@]} hang(s)"
	if [ -n "$broken" ]; then
		line="$t: BROKEN: $broken"
		status=2
	elif [ ${#crashes[@]} -gt 0 ] || [ ${#hangs[@]} -gt 0 ]; then
		[ "$status" -eq 2 ] || status=1
	fi
	for c in ${crashes[@]+"${crashes[@]}"}; do line+=$'\n'"    crash  $c"; done
	for h in ${hangs[@]+"${hangs[@]}"}; do line+=$'\n'"    hang   $h"; done
	echo "$line"
	summary+=("$line")
done

echo
echo "== fuzz summary (${seconds}s per target) =="
printf '%s\n' "${summary[@]}"
exit "$status"
