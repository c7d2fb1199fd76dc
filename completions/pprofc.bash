# bash completion for pprofc                                -*- shell-script -*-
#
# Installed as $datadir/bash-completion/completions/pprofc, where the
# bash-completion package loads it on first use; it can also be sourced
# directly.  It uses only bash builtins and needs nothing from
# bash-completion.  Where bash-completion is loaded, the words after
# "pprofc run --" are completed by the completion of the command to run.
#
#   pprofc COMMAND [options] ...     COMMAND: dump-threads attach run report serve help
#
# Both --opt=value and --opt value are understood, and so are -oFILE, option
# clusters (-vo FILE), unique abbreviations of long options (--prof) and
# "--" (end of options), as getopt_long parses them.  PID positions complete
# the processes in /proc, --tid the threads of the PID given on the line.
# tests/integration/test_completions.py checks this file.

# Rebuilds the line into words as pprofc will see them.  Readline splits a
# word at the characters of COMP_WORDBREAKS ("--opt=value" arrives as
# "--opt" "=" "value", "a:b" as "a" ":" "b"); pieces are glued back where
# nothing separates them on the line.  Sets the caller's words, origs (where
# each word starts in COMP_WORDS), cword and cur (the word up to the cursor).
_pprofc_words()
{
    local line=$COMP_LINE rest pre w prev=
    local -i i n=-1 pos=0 gap trusted=1 point=$COMP_POINT piece=-1
    local -a wstart=() wend=()
    words=() origs=() cword=-1 cur=
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if ((trusted)); then
            rest=${line:pos}
            pre=${rest%%[![:space:]]*}
            gap=$((${#pre} > 0))
            pos+=${#pre}
            rest=${line:pos}
            if [[ $rest != "$w"* ]]; then
                # Something on the line is not in COMP_WORDS (a prefix that
                # bash left out): look for the word further on.
                pre=${rest%%"$w"*}
                if [[ $pre == "$rest" ]]; then
                    trusted=0
                else
                    pos+=${#pre}
                    gap=1
                fi
            fi
        fi
        if ((!trusted)); then
            # Without the line to go by, a piece made only of "=" and ":"
            # is glued to its neighbours.
            gap=1
            [[ -n $w && ( -z ${w//[=:]/} || ( -n $prev && -z ${prev//[=:]/} ) ) ]] && gap=0
        fi
        if ((n >= 0 && !gap)) &&
            [[ ( -n $w && -z ${w//[=:]/} ) || ( -n $prev && -z ${prev//[=:]/} ) ]]; then
            words[n]+=$w
        else
            n+=1
            words[n]=$w origs[n]=$i wstart[n]=$pos
        fi
        pos+=${#w}
        wend[n]=$pos
        ((i == COMP_CWORD)) && piece=n
        prev=$w
    done

    if ((piece < 0)); then
        # The cursor is past the last word.
        n+=1
        words[n]= origs[n]=${#COMP_WORDS[@]} cword=$n cur=
    elif ((!trusted)); then
        cword=$piece cur=${words[piece]}
    elif ((point >= wstart[piece])); then
        cword=$piece cur=${line:wstart[piece]:point-wstart[piece]}
    elif ((piece > 0 && point == wend[piece - 1])); then
        # Right after the word before, as in "--tid=| 123".
        cword=$((piece - 1)) cur=${words[piece - 1]}
    else
        # In the blanks before a word: COMP_WORDS has no empty word for
        # the cursor, so one is put in.
        words=("${words[@]:0:piece}" "" "${words[@]:piece}")
        origs=("${origs[@]:0:piece}" "${origs[piece]}" "${origs[@]:piece}")
        cword=$piece cur=
    fi
}

# Removes shell quoting from the variable named $1 (quotes, backslashes).
_pprofc_dequote()
{
    local s=${!1} out= c q=
    local -i j
    for ((j = 0; j < ${#s}; j++)); do
        c=${s:j:1}
        if [[ -z $q ]]; then
            case $c in
            \' | \") q=$c ;;
            \\) ((j++)); out+=${s:j:1} ;;
            *) out+=$c ;;
            esac
        elif [[ $c == "$q" ]]; then
            q=
        elif [[ $q == \" && $c == \\ && ${s:j+1:1} == [\$\`\"\\] ]]; then
            ((j++))
            out+=${s:j:1}
        else
            out+=$c
        fi
    done
    printf -v "$1" %s "$out"
}

# Adds to cands each of $3... that starts with $2, prefixed with $1 (the part
# of the word before the value, as "--format=").
_pprofc_add()
{
    local p=$1 v=$2 c
    shift 2
    for c; do
        [[ $c == "$v"* ]] && cands+=("$p$c")
    done
}

# File names for the value $2 (prefixed with $1).  With $3, profiles
# (*.pb.gz) and directories only, unless no profile matches.
_pprofc_files()
{
    local v=$2 f
    local -a list=()
    _pprofc_dequote v
    if [[ -n ${3-} ]]; then
        mapfile -t list < <(compgen -f -X '!*.pb.gz' -- "$v")
        ((${#list[@]})) && mapfile -t -O ${#list[@]} list < <(compgen -d -- "$v")
    fi
    ((${#list[@]})) || mapfile -t list < <(compgen -f -- "$v")
    for f in "${list[@]}"; do
        cands+=("$1$f")
    done
    isfile=1
}

# The PIDs of running processes that start with $1.
_pprofc_pids()
{
    local -a ps=(/proc/[0-9]*)
    local p
    for p in "${ps[@]#/proc/}"; do
        [[ $p =~ ^[0-9]+$ && $p == "$1"* ]] && cands+=("$p")
    done
}

# Thread ids of the PID on the line for the list $2 ("T1,T2,T"), prefixed
# with $1; threads already in the list are left out.
_pprofc_tids()
{
    ((pid_i >= 0)) || return
    local pid=${words[pid_i]} last=${2##*,} t
    local listed=${2%"$last"}
    [[ $pid =~ ^[0-9]+$ && -d /proc/$pid/task ]] || return
    local -a ts=(/proc/"$pid"/task/[0-9]*)
    for t in "${ts[@]##*/}"; do
        [[ ,$listed == *,"$t",* ]] && continue
        [[ $t == "$last"* ]] && cands+=("$1$listed$t")
    done
}

# Values of option $1 of command $cmd that start with $3, prefixed with $2.
_pprofc_value()
{
    case $1 in
    profile)
        if [[ $cmd == attach ]]; then
            _pprofc_add "$2" "$3" cpu wall block mutex heap allocs trace threadcreate threads
        else
            _pprofc_add "$2" "$3" cpu wall block mutex heap allocs trace threadcreate
        fi
        ;;
    format)
        case $cmd in
        dump-threads) _pprofc_add "$2" "$3" text json ;;
        attach | run) _pprofc_add "$2" "$3" proto top folded ;;
        report) _pprofc_add "$2" "$3" top folded svg ;;
        esac
        ;;
    debug) _pprofc_add "$2" "$3" 1 2 ;;
    engine) _pprofc_add "$2" "$3" auto perf ptrace ;;
    output | basic-auth-file | token-file) _pprofc_files "$2" "$3" ;;
    tid) _pprofc_tids "$2" "$3" ;;
    esac
}

# Sets opt to the long option of $cmd that $1 (without "--") names, exactly
# or as a unique abbreviation; empty if none.
_pprofc_long()
{
    local n m=
    local -i count=0
    opt=
    for n in $longv $longf; do
        if [[ $n == "$1" ]]; then
            opt=$n
            return
        fi
        [[ $n == "$1"* ]] && m=$n count+=1
    done
    ((count == 1)) && opt=$m
}

# Completes the words after "pprofc CMD".
_pprofc_command()
{
    local cmd=$1 longv longf shortf=vh
    case $cmd in
    dump-threads)
        longv="debug format output pprof stack-size stop-timeout" longf="children stop-all verbose help" ;;
    attach)
        longv="profile seconds hz tid output format stack-size engine heap-rate max-hit-rate" longf="children force-stop verbose help" ;;
    run)
        longv="profile seconds hz output format stack-size engine heap-rate interval serve basic-auth-file token-file"
        longf="children force-stop linger verbose help" ;;
    serve)
        longv="listen basic-auth-file token-file max-connections max-profiles max-seconds hz offcpu-hz offcpu-keep engine heap-rate max-hit-rate"
        longf="linger verbose help" ;;
    report)
        longv="format sample-index tagfocus tagignore output" longf="help" shortf=h ;;
    esac

    # Gives every word a role: an option, the value of option X ("val X"),
    # the Nth operand ("pos N"), "--", or a word of the command to run.
    local -a roles=()
    local w expect= opt c
    local -i i j npos=0 dd=0 cmdstart=-1 pid_i=-1
    for ((i = 2; i < ${#words[@]}; i++)); do
        w=${words[i]}
        ((i == cword)) && w=$cur
        if ((cmdstart >= 0)); then
            roles[i]=cmd
        elif [[ -n $expect ]]; then
            roles[i]="val $expect" expect=
        elif ((!dd)) && [[ $w == -?* || ( $w == - && i -eq cword ) ]]; then
            roles[i]=opt
            if [[ $w == -- ]]; then
                ((i == cword)) && continue
                roles[i]=dd dd=1
                [[ $cmd == run ]] && cmdstart=i+1
            elif [[ $w == --* ]]; then
                [[ $w == *=* ]] && continue
                _pprofc_long "${w#--}"
                [[ -n $opt && " $longv " == *" $opt "* ]] && expect=$opt
            else
                for ((j = 1; j < ${#w}; j++)); do
                    c=${w:j:1}
                    if [[ $c == o ]]; then
                        ((j == ${#w} - 1)) && expect=output
                        break
                    fi
                    [[ $shortf == *"$c"* ]] || break
                done
            fi
        elif [[ $cmd == run ]]; then
            roles[i]=cmd cmdstart=i
        else
            roles[i]="pos $npos"
            ((npos == 0 && i != cword)) && pid_i=i
            npos+=1
        fi
    done

    case ${roles[cword]} in
    "val "*)
        _pprofc_value "${roles[cword]#val }" "" "$cur"
        ;;
    opt)
        if [[ $cur == --*=* ]]; then
            w=${cur%%=*}
            _pprofc_long "${w#--}"
            [[ -n $opt ]] && _pprofc_value "$opt" "$w=" "${cur#*=}"
        elif [[ $cur == -[!-]?* ]]; then
            # A cluster of short options: "-oFILE" completes FILE, and a
            # cluster of flags is complete as it is.
            cands=("$cur")
            for ((j = 1; j < ${#cur}; j++)); do
                c=${cur:j:1}
                if [[ $c == o ]]; then
                    cands=()
                    ((j < ${#cur} - 1)) && _pprofc_files "${cur:0:j+1}" "${cur:j+1}"
                    break
                fi
                [[ $shortf == *"$c"* ]] || { cands=(); break; }
            done
        else
            [[ $cmd == serve ]] || _pprofc_add "" "$cur" -o
            for ((j = 0; j < ${#shortf}; j++)); do
                _pprofc_add "" "$cur" "-${shortf:j:1}"
            done
            for w in $longv; do
                _pprofc_add "" "$cur" "--$w="
            done
            for w in $longf; do
                _pprofc_add "" "$cur" "--$w"
            done
        fi
        ;;
    "pos "*)
        if [[ ${roles[cword]} == "pos 0" ]]; then
            if [[ $cmd == report ]]; then
                _pprofc_files "" "$cur" profiles
            else
                _pprofc_pids "$cur"
            fi
        fi
        ;;
    cmd)
        if declare -F _comp_command_offset >/dev/null; then
            _comp_command_offset "${origs[cmdstart]}"
            delegated=1
            return
        elif declare -F _command_offset >/dev/null; then
            _command_offset "${origs[cmdstart]}"
            delegated=1
            return
        fi
        if ((cword == cmdstart)) && [[ $cur != */* ]]; then
            mapfile -t cands < <(compgen -c -- "$cur" | sort -u)
        else
            _pprofc_files "" "$cur"
        fi
        ;;
    esac
}

# Moves cands into COMPREPLY.  Readline replaces only the text after the last
# word-break character of the word (after "=" in "--format=t"), so what
# comes before it is taken off each candidate.
_pprofc_reply()
{
    local pfx= c head=${cur%%[\"\']*}
    local -i j
    for ((j = ${#head} - 1; j >= 0; j--)); do
        c=${head:j:1}
        if [[ $c == [=:] && $COMP_WORDBREAKS == *"$c"* ]]; then
            pfx=${head:0:j+1}
            break
        fi
    done
    for c in "${cands[@]}"; do
        COMPREPLY+=("${c#"$pfx"}")
    done
    ((isfile)) && compopt -o filenames 2>/dev/null
    if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

_pprofc()
{
    local cur
    local -i cword
    local -a words=() origs=() cands=()
    local -i isfile=0 delegated=0
    COMPREPLY=()
    _pprofc_words

    if ((cword == 1)); then
        if [[ $cur == -* ]]; then
            _pprofc_add "" "$cur" -h --help --version
        else
            _pprofc_add "" "$cur" dump-threads attach run report serve help
        fi
    else
        case ${words[1]} in
        help)
            ((cword == 2)) && _pprofc_add "" "$cur" dump-threads attach run report serve
            ;;
        dump-threads | attach | run | report | serve)
            _pprofc_command "${words[1]}"
            # the command after "run --" was completed by its own completion
            ((delegated)) && return 0
            ;;
        esac
    fi
    _pprofc_reply
}

complete -F _pprofc pprofc
