# Sourced by the bench scripts. `median`: the median of the numbers on stdin, one per line
# (the mean of the two middle ones for an even count). `median_of X…`: the same of its
# arguments.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
median_of() { printf '%s\n' "$@" | median; }
