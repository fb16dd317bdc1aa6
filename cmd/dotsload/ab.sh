#!/usr/bin/env bash
# ab.sh measures two dotsd binaries with the same load tool, alternately,
# and prints the headline figures side by side.
#
#   cmd/dotsload/ab.sh [-n RUNS] [-p PHASES] [-o DIR] A_DOTSD B_DOTSD [-- DOTSLOAD_ARGS...]
#
#   -n RUNS    runs per binary (default 5)
#   -p PHASES  dotsload phases (default 125: create p99 on one session,
#              cycles/s over 100 sessions, PUT → route at ExaBGP; add 6 for
#              the kill -9 restart with 10,000 FlowSpec mitigations)
#   -o DIR     keep every run's output and figures in DIR (default: a new
#              directory under /tmp, printed at the start)
#
# Arguments after "--" go to every dotsload run, e.g. "-- --requests 500
# --duration 3s" for a short run. dotsload is built from this tree, so both
# binaries meet the same load tool. The order alternates (A B, B A, A B, …)
# so that a drift in the machine's load falls on both. The table shows each
# run's figure, the median per binary and B's median as a percentage of A's.
# Example, the tree before and after a change:
#
#   git worktree add /work/baseline bb397df && (cd /work/baseline && go build -o bin/ ./cmd/...)
#   make build && cmd/dotsload/ab.sh -n 5 /work/baseline/bin/dotsd bin/dotsd
set -euo pipefail

runs=5 phases=125 out=""
while getopts "n:p:o:h" opt; do
	case $opt in
	n) runs=$OPTARG ;;
	p) phases=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 2 ]; then
	echo "usage: $0 [-n RUNS] [-p PHASES] [-o DIR] A_DOTSD B_DOTSD [-- DOTSLOAD_ARGS...]" >&2
	exit 2
fi
a=$(realpath "$1") b=$(realpath "$2")
shift 2
[ "${1:-}" = "--" ] && shift
for bin in "$a" "$b"; do
	[ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }
done
case $runs in '' | *[!0-9]* | 0) echo "ab.sh: -n wants a positive number" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${out:-$(mktemp -d /tmp/dotsload-ab-XXXXXX)}
mkdir -p "$out"
echo "ab.sh: A = $a"
echo "ab.sh: B = $b"
echo "ab.sh: $runs runs each of phases $phases, output in $out"
(cd "$root" && go build -o "$out/dotsload" ./cmd/dotsload)

for ((i = 1; i <= runs; i++)); do
	order="A B"
	[ $((i % 2)) -eq 0 ] && order="B A"
	for side in $order; do
		bin=$a
		[ "$side" = B ] && bin=$b
		log=$out/$side-$i.log fig=$out/$side-$i.fig
		start=$(date +%s)
		if ! "$out/dotsload" --dotsd "$bin" --phases "$phases" --figures "$fig" "$@" >"$log" 2>&1; then
			echo "  run $i $side: dotsload failed, see $log:" >&2
			tail -5 "$log" | sed 's/^/    /' >&2
			rm -f "$fig"
			continue
		fi
		echo "  run $i $side ($(($(date +%s) - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)): $(tr '\n' ' ' <"$fig")"
	done
done

# The table: one row per figure, the runs of A, A's median, the runs of B,
# B's median, and B's median in % of A's.
for ((i = 1; i <= runs; i++)); do
	for side in A B; do
		[ -f "$out/$side-$i.fig" ] && sed "s/^/$side $i /" "$out/$side-$i.fig"
	done
done | awk -v runs="$runs" '
function median(side, fig,   n, v, i, j, t) {
	n = 0
	for (i = 1; i <= runs; i++)
		if ((side, fig, i) in val) v[++n] = val[side, fig, i] + 0
	if (n == 0) return ""
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
	return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
{
	val[$1, $3, $2] = $4
	if (!($3 in seen)) { seen[$3] = 1; order[++nfig] = $3 }
}
END {
	printf "\n%-20s", "figure"
	for (s = 0; s < 2; s++) {
		side = s ? "B" : "A"
		for (i = 1; i <= runs; i++) printf " %9s", side i
		printf " %10s", side " median"
	}
	printf " %8s\n", "B/A"
	for (k = 1; k <= nfig; k++) {
		f = order[k]
		printf "%-20s", f
		for (s = 0; s < 2; s++) {
			side = s ? "B" : "A"
			for (i = 1; i <= runs; i++) printf " %9s", ((side, f, i) in val) ? sprintf("%.2f", val[side, f, i]) : "-"
			m[side] = median(side, f)
			printf " %10s", m[side] == "" ? "-" : sprintf("%.2f", m[side])
		}
		if (m["A"] != "" && m["B"] != "" && m["A"] > 0 && m["B"] >= 0)
			printf " %7.0f%%\n", 100 * m["B"] / m["A"]
		else
			printf " %8s\n", "-"
	}
	print "\n(ms figures: lower is better; per_s figures: higher is better; -1: did not happen within the bound)"
}'
