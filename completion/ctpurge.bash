# bash completion for ctpurge (generated from its option table; do not edit)
_ctpurge() {
  local cur prev cmd opts
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=purge
  case ${COMP_WORDS[1]} in list|stats|doctor|watch|top|check-rules) cmd=${COMP_WORDS[1]} ;; esac
  case $prev in
    --family) COMPREPLY=($(compgen -W "ipv4 ipv6" -- "$cur")); return ;;
    --proto) COMPREPLY=($(compgen -W "tcp udp icmp icmpv6 sctp dccp gre udplite" -- "$cur")); return ;;
    -o|--output) COMPREPLY=($(compgen -W "table conntrack json" -- "$cur")); return ;;
    --state) COMPREPLY=($(compgen -W "ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE" -- "$cur")); return ;;
    --netns) COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | cut -d' ' -f1)" -- "$cur")); return ;;
    --log|--metrics-file|--pid-file|--rules) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    check-rules) if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi ;;
  esac
  case $cmd in
    purge) opts="--unreplied --assured --status --src-nat --dst-nat --any-nat --label --older --idle --state --proto --family --src --dst --reply-src --reply-dst --sport --dport --reply-sport --reply-dport --mark --zone --orig-zone --reply-zone --except --netns --all-netns --rules --dry-run --grace --no-wait --limit --max-delete --log --json --every --adaptive --when-above --metrics-file --metrics-listen --lock-wait --pid-file --quiet --verbose --help --version" ;;
    list) opts="--unreplied --assured --status --src-nat --dst-nat --any-nat --label --older --idle --state --proto --family --src --dst --reply-src --reply-dst --sport --dport --reply-sport --reply-dport --mark --zone --orig-zone --reply-zone --except --netns --limit --json --output --quiet --verbose --help --version" ;;
    stats) opts="--unreplied --assured --status --src-nat --dst-nat --any-nat --label --older --idle --state --proto --family --src --dst --reply-src --reply-dst --sport --dport --reply-sport --reply-dport --mark --zone --orig-zone --reply-zone --except --netns --all-netns --json --top --quiet --verbose --help --version" ;;
    doctor) opts="--netns --all-netns --json --quiet --verbose --help --version" ;;
    watch) opts="--unreplied --assured --status --src-nat --dst-nat --any-nat --label --older --idle --state --proto --family --src --dst --reply-src --reply-dst --sport --dport --reply-sport --reply-dport --mark --zone --orig-zone --reply-zone --except --netns --json --quiet --verbose --help --version" ;;
    top) opts="--unreplied --assured --status --src-nat --dst-nat --any-nat --label --older --idle --state --proto --family --src --dst --reply-src --reply-dst --sport --dport --reply-sport --reply-dport --mark --zone --orig-zone --reply-zone --except --netns --all-netns --json --interval --once --quiet --verbose --help --version" ;;
    check-rules) opts="--netns --json --quiet --verbose --help --version" ;;
  esac
  if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then
    COMPREPLY=($(compgen -W "list stats doctor watch top check-rules" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  fi
}
complete -F _ctpurge ctpurge
