# Sourced by the scripts/bench-* scripts: the median and spread of several
# rounds, so a figure comes with how much it moved (one round on a loaded
# machine says little; the best of several hides the spread).

# median: the median of the numbers on stdin, one a line.
median() {
  sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# stats [FORMAT]: "median (min-max)" of the numbers on stdin, each printed
# with FORMAT (printf, default %.2f), e.g. `3.10 (2.95-3.40)`.
stats() {
  sort -n | awk -v f="${1:-%.2f}" '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf f " (" f "-" f ")", m, v[1], v[NR]
  }'
}
