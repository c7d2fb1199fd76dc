# fish completion for pprofc
#
# Installed as $datadir/fish/vendor_completions.d/pprofc.fish, where fish
# loads it on first use.  PID positions complete the processes in /proc
# with their command names; --tid completes the threads of the PID given on
# the line; after "pprofc run --" the command to run is completed as usual.

# Long options that take a value, in any command.
set -g __pprofc_valued profile seconds hz tid output format stack-size debug stop-timeout pprof heap-rate interval max-hit-rate \
    serve listen basic-auth-file token-file max-connections max-profiles max-seconds offcpu-hz offcpu-keep engine

# Prints the command (the word after "pprofc") if the line has one.
function __pprofc_command
    set -l t (commandline -opc)
    set -q t[2]; and printf '%s\n' $t[2]
end

function __pprofc_needs_command
    test (count (commandline -opc)) -eq 1
end

# True if the command is one of $argv.
function __pprofc_using
    contains -- (__pprofc_command) $argv
end

# Prints the operands of the command: the words that are neither options
# nor option values.  With --all, the words after the cursor count too
# (but never the word being completed); for run, the words of the command
# to run are left out.
function __pprofc_operands
    set -l t (commandline -opc)
    set -l n (count $t)
    if test "$argv[1]" = --all
        set -l all (commandline -op)
        # Skip the word under the cursor, if the cursor is on one.
        set -l cur (commandline -ct)
        set -l from (math $n + 1)
        test -n "$cur"; and set from (math $n + 2)
        for i in (seq $from (count $all))
            set -a t $all[$i]
        end
    end
    set -l expect 0
    set -l dd 0
    for w in $t[3..-1]
        if test $expect = 1
            set expect 0
        else if test $dd = 0 -a "$w" = --
            set dd 1
            test "$t[2]" = run; and return
        else if test $dd = 0; and string match -q -- '-?*' $w
            if string match -q -- '--*' $w
                string match -q -- '*=*' $w; or contains -- (string sub -s 3 -- $w) $__pprofc_valued; and set expect 1
            else if string match -qr -- '^-[vh]*o$' $w
                set expect 1
            end
        else
            printf '%s\n' $w
            test "$t[2]" = run; and return
        end
    end
end

# True where the next operand is wanted: the command is one of $argv and
# has no operand yet.
function __pprofc_operand_wanted
    __pprofc_using $argv; or return
    test (count (__pprofc_operands)) -eq 0
end

# True after "pprofc run --" or after run's first operand: the words of the
# command to run.
function __pprofc_in_run_command
    __pprofc_using run; or return
    set -l t (commandline -opc)
    contains -- -- $t[3..-1]; or test (count (__pprofc_operands)) -gt 0
end

# Completes the command to run and its arguments, as fish would.
function __pprofc_run_command
    set -l t (commandline -opc)
    set -l from 0
    set -l expect 0
    for i in (seq 3 (count $t))
        set -l w $t[$i]
        if test $expect = 1
            set expect 0
        else if test "$w" = --
            set from (math $i + 1)
            break
        else if string match -q -- '-?*' $w
            if string match -q -- '--*' $w
                string match -q -- '*=*' $w; or contains -- (string sub -s 3 -- $w) $__pprofc_valued; and set expect 1
            else if string match -qr -- '^-[vh]*o$' $w
                set expect 1
            end
        else
            set from $i
            break
        end
    end
    test $from -gt 0; or return
    set -l words
    for i in (seq $from (count $t))
        set -a words (string escape -- $t[$i])
    end
    set -a words (commandline -ct)
    complete -C (string join ' ' -- $words)
end

# PIDs of running processes, with their command names.
function __pprofc_pids
    grep -sH '' /proc/*/comm 2>/dev/null | string replace -rf '^/proc/(\d+)/comm:(.*)$' '$1\t$2'
end

# Thread ids of the PID on the line, with thread names, for a list
# "T1,T2,T": the threads already listed are left out.
function __pprofc_tids
    set -l pid (__pprofc_operands --all)[1]
    string match -qr '^\d+$' -- "$pid"; or return
    set -l value (string replace -r -- '^--tid=' '' (commandline -ct))
    set -l listed (string match -r -- '^.*,' $value)
    set -l done (string split , -- $listed)
    for f in /proc/$pid/task/*/comm
        set -l tid (string split / -- $f)[5]
        contains -- $tid $done; and continue
        printf '%s%s\t%s\n' "$listed" $tid (string join ' ' (grep -s '' $f))
    end
end

complete -c pprofc -f

# pprofc COMMAND
complete -c pprofc -n __pprofc_needs_command -a dump-threads -d "Print every thread's state and stack"
complete -c pprofc -n __pprofc_needs_command -a attach -d 'Profile a running process'
complete -c pprofc -n __pprofc_needs_command -a run -d 'Run a command and profile it'
complete -c pprofc -n __pprofc_needs_command -a report -d 'Show a saved profile'
complete -c pprofc -n __pprofc_needs_command -a serve -d "Serve Go's /debug/pprof/ for a running process"
complete -c pprofc -n __pprofc_needs_command -a help -d 'Show help'
complete -c pprofc -n __pprofc_needs_command -s h -l help -d 'Show help'
complete -c pprofc -n __pprofc_needs_command -l version -d 'Print the version'
complete -c pprofc -n '__pprofc_using help; and test (count (commandline -opc)) -eq 2' \
    -a 'dump-threads attach run report serve'

# Options of the commands (none after "run --").
set -l dt '__pprofc_using dump-threads'
set -l at '__pprofc_using attach'
set -l ru '__pprofc_using run; and not __pprofc_in_run_command'
set -l re '__pprofc_using report'
set -l se '__pprofc_using serve'

complete -c pprofc -n $dt -l debug -x -a '1\t"Identical stacks grouped with a count" 2\t"One block per thread (default)"' -d 'Detail level'
complete -c pprofc -n $dt -l format -x -a 'text\t"Text (default)" json\tJSON' -d 'Output format'
complete -c pprofc -n $dt -s o -l output -r -F -d 'Write to FILE'
complete -c pprofc -n $dt -l stack-size -x -d 'Most stack bytes copied per thread'
complete -c pprofc -n $dt -l stop-timeout -x -d 'Milliseconds to wait for threads to stop'
complete -c pprofc -n $dt -l pprof -r -F -d 'Also write a pprof threads profile'
complete -c pprofc -n $dt -l stop-all -d 'Stop blocked threads too (for comparison)'
complete -c pprofc -n $dt -l children -d 'Also the processes descending from them'
complete -c pprofc -n $dt -s v -l verbose -d 'Report how long the process was stopped'
complete -c pprofc -n $dt -s h -l help -d 'Show help'
complete -c pprofc -n "$dt; and __pprofc_operand_wanted dump-threads" -a '(__pprofc_pids)'

complete -c pprofc -n $at -l profile -x -a 'cpu\t"On-CPU time" wall\t"Wall-clock time" block\t"Time blocked" mutex\t"Lock contention" heap\t"Live allocations made in the window" allocs\t"Allocations made in the window" trace\t"Timeline of every thread (JSON)" threadcreate\t"Thread creations" threads\t"Thread stacks"' -d 'Profile to take'
complete -c pprofc -n $at -l heap-rate -x -d 'Mean bytes between sampled allocations'
complete -c pprofc -n $at -l max-hit-rate -x -d 'Close the probes above N calls per second'
complete -c pprofc -n $at -l seconds -x -d 'How long to sample'
complete -c pprofc -n $at -l hz -x -d 'Samples per second per thread'
complete -c pprofc -n $at -l tid -x -a '(__pprofc_tids)' -d 'Sample only these threads'
complete -c pprofc -n $at -s o -l output -r -F -d 'Write the profile to FILE'
complete -c pprofc -n $at -l format -x -a 'proto\t"pprof protobuf (default)" top\t"Top functions" folded\t"Collapsed stacks"' -d 'Output format'
complete -c pprofc -n $at -l stack-size -x -d 'Stack bytes copied per sample'
complete -c pprofc -n $at -l engine -x -a 'auto\t"perf where allowed, else ptrace" perf\t"perf_event: nothing stopped" ptrace\t"ptrace stops"' -d 'Sampling engine'
complete -c pprofc -n $at -l force-stop -d 'Stop every thread each tick (for comparison)'
complete -c pprofc -n $at -l children -d 'Also the processes descending from them at the start'
complete -c pprofc -n $at -s v -l verbose -d 'More detail in the summary'
complete -c pprofc -n $at -s h -l help -d 'Show help'
complete -c pprofc -n "$at; and __pprofc_operand_wanted attach" -a '(__pprofc_pids)'

complete -c pprofc -n $ru -l profile -x -a 'cpu\t"On-CPU time" wall\t"Wall-clock time" block\t"Time blocked" mutex\t"Lock contention" heap\t"Live allocations" allocs\t"All allocations" trace\t"Timeline of every thread (JSON)" threadcreate\t"Thread creations"' -d 'Profile to take'
complete -c pprofc -n $ru -l heap-rate -x -d 'Mean bytes between sampled allocations'
complete -c pprofc -n $ru -l interval -x -d 'A numbered heap snapshot every SECS'
complete -c pprofc -n $ru -l children -d 'Also record the processes the command starts'
complete -c pprofc -n $ru -l seconds -x -d 'How long to sample'
complete -c pprofc -n $ru -l hz -x -d 'Samples per second per thread'
complete -c pprofc -n $ru -s o -l output -r -F -d 'Write the profile to FILE'
complete -c pprofc -n $ru -l format -x -a 'proto\t"pprof protobuf (default)" top\t"Top functions" folded\t"Collapsed stacks"' -d 'Output format'
complete -c pprofc -n $ru -l stack-size -x -d 'Stack bytes copied per sample'
complete -c pprofc -n $ru -l engine -x -a 'auto\t"perf where allowed, else ptrace" perf\t"perf_event: nothing stopped" ptrace\t"ptrace stops"' -d 'Sampling engine'
complete -c pprofc -n $ru -l force-stop -d 'Stop every thread each tick (for comparison)'
complete -c pprofc -n $ru -l serve -x -d "Serve Go's /debug/pprof/ for the command on ADDR"
complete -c pprofc -n $ru -l basic-auth-file -r -F -d 'With --serve: a file holding USER:PASSWORD'
complete -c pprofc -n $ru -l token-file -r -F -d 'With --serve: a file holding the bearer token'
complete -c pprofc -n $ru -l linger -d 'With --serve: keep serving the final heap and allocs after the command exits'
complete -c pprofc -n $ru -s v -l verbose -d 'More detail in the summary'
complete -c pprofc -n $ru -s h -l help -d 'Show help'
complete -c pprofc -n "$ru; and __pprofc_operand_wanted run" -a '(__fish_complete_command)'
complete -c pprofc -n __pprofc_in_run_command -a '(__pprofc_run_command)'

complete -c pprofc -n $re -l format -x -a 'top\t"Top functions" folded\t"Collapsed stacks" svg\t"Interactive flame graph"' -d 'Output format'
complete -c pprofc -n $re -l sample-index -x -d 'Sample value shown (type or index)'
complete -c pprofc -n $re -l tagfocus -x -d 'Only samples with a matching label'
complete -c pprofc -n $re -l tagignore -x -d 'Leave out samples with a matching label'
complete -c pprofc -n $re -s o -l output -r -F -d 'Write to FILE'
complete -c pprofc -n $re -s h -l help -d 'Show help'
complete -c pprofc -n "$re; and __pprofc_operand_wanted report" -k -a '(__fish_complete_suffix .pb.gz)'

complete -c pprofc -n $se -l listen -x -d 'HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:6060)'
complete -c pprofc -n $se -l basic-auth-file -r -F -d 'Require HTTP basic auth (a file holding USER:PASSWORD)'
complete -c pprofc -n $se -l token-file -r -F -d 'Require a bearer token (a file holding it)'
complete -c pprofc -n $se -l max-connections -x -d 'Open connections at once'
complete -c pprofc -n $se -l max-profiles -x -d 'Collections of the process at once'
complete -c pprofc -n $se -l max-seconds -x -d 'Longest seconds=N accepted'
complete -c pprofc -n $se -l hz -x -d "CPU profiles' samples per second"
complete -c pprofc -n $se -l offcpu-hz -x -d 'Ticks per second of the cumulative block and mutex profiles'
complete -c pprofc -n $se -l offcpu-keep -x -d 'Block, mutex, threadcreate stop after S seconds unasked'
complete -c pprofc -n $se -l linger -d 'Keep serving the last block and mutex profiles after the process exits'
complete -c pprofc -n $se -l engine -x -a 'auto\t"perf where allowed, else ptrace" perf\t"perf_event: nothing stopped" ptrace\t"ptrace stops"' -d 'CPU profiles: sampling engine'
complete -c pprofc -n $se -l heap-rate -x -d 'Heap windows: mean bytes between samples'
complete -c pprofc -n $se -l max-hit-rate -x -d 'Heap windows: close the probes above N calls per second'
complete -c pprofc -n $se -s v -l verbose -d 'One line per request on stderr'
complete -c pprofc -n $se -s h -l help -d 'Show help'
complete -c pprofc -n "$se; and __pprofc_operand_wanted serve" -a '(__pprofc_pids)'
