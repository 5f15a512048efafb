# The agent of a sandboxed lane (src/sandbox-lane.ts). It runs inside one long-lived bwrap that
# made the lane's user, mount, PID, network, IPC and UTS namespaces once, with CAP_SYS_ADMIN in
# that user namespace. For each command it reads a request on stdin, clones a child that gives
# the command a view of its own and becomes it, and answers with the command's status on stdout:
# - the clone is in new mount, PID and IPC namespaces (the lane's network and UTS ones are
#   shared, and nothing in them can be changed without the capabilities the command loses);
# - its action directory bound at the build path, fresh tmpfs at /tmp and /dev/shm, the lane's
#   own directories (every action's, the lane's files) covered by an empty read-only tmpfs: they
#   cannot be unmounted, since bwrap's second user namespace locks the mounts it made;
# - a /proc of its PID namespace (only its own processes), /proc/sys read-only;
# - the command is pid 1 of that namespace: when it exits the kernel kills whatever it left
#   there, and the agent, its parent, answers with its status. One process per command, made by
#   one clone(): a fork, an unshare and a second fork for an init cost two more processes and two
#   more wake-ups on every command's way;
# - before exec it loses CAP_SYS_ADMIN and CAP_NET_ADMIN (from every set, and from the bounding
#   set where it may): with them it could remount what the lane's next command sees.
# perl's syscall() makes the system calls (their numbers come on the command line, per
# architecture), so no helper binary of wmb's is needed. perl-base is essential on Debian.
# The agent has one thread and holds no lock when it clones, so the raw clone's child may go on
# in perl as a fork's would until it execs.
# A request is fields "<tag><value>\0" (no value holds a NUL) ending with ".\0".
use strict;
my ($CLONE, $MOUNT, $PRCTL, $CAPGET, $CAPSET, $EXIT, $HIDE) = @ARGV;
my ($RDONLY, $NOSUID, $NODEV, $NOEXEC, $REMOUNT, $BIND, $REC, $PRIVATE) = (1, 2, 4, 8, 32, 4096, 16384, 1 << 18);
my ($NEWNS, $NEWIPC, $NEWPID, $SIGCHLD) = (0x20000, 0x08000000, 0x20000000, 17);
my ($CAP_NET_ADMIN, $CAP_SYS_ADMIN) = (12, 21);

sub fail { print STDERR "wmb: setting up the sandbox failed: $_[0]: $!\n"; exit 125; }
sub mnt {
  my ($src, $dst, $type, $flags, $data) = @_;
  syscall($MOUNT, $src, $dst, $type // 0, $flags + 0, $data // 0) == 0 or fail("mount $dst");
}
# A forked copy of the agent leaves through exit_group at once: perl's own exit would tear down
# the interpreter, writing to every page it shares with the agent (copies, on the command's path).
sub quit { syscall($EXIT, $_[0] + 0); }
sub status { my $s = shift; return $s & 127 ? 128 + ($s & 127) : $s >> 8; }

sub drop_capabilities {
  syscall($PRCTL, 24, $_, 0, 0, 0) for $CAP_SYS_ADMIN, $CAP_NET_ADMIN; # PR_CAPBSET_DROP, needs CAP_SETPCAP
  syscall($PRCTL, 47, 4, 0, 0, 0); # PR_CAP_AMBIENT_CLEAR_ALL
  my $header = pack("LL", 0x20080522, 0); # _LINUX_CAPABILITY_VERSION_3, this process
  my $sets = "\0" x 24;
  syscall($CAPGET, $header, $sets) == 0 or fail("capget");
  my @c = unpack("L6", $sets); # effective, permitted, inheritable of caps 0-31, then 32-63
  $_ &= ~((1 << $CAP_SYS_ADMIN) | (1 << $CAP_NET_ADMIN)) for @c[0 .. 2];
  syscall($CAPSET, $header, pack("L6", @c)) == 0 or fail("capset");
}

# In the clone: pid 1 of its own PID namespace, in mount and IPC namespaces of its own.
sub run_command {
  my ($r, $argv, $env) = @_;
  open(STDIN, "<", $r->{i} // "/dev/null") or fail("stdin");
  open(STDOUT, ">", $r->{o}) or fail("stdout");
  open(STDERR, ">", $r->{r}) or fail("stderr");
  mnt("none", "/", undef, $REC | $PRIVATE);
  mnt($r->{d}, $r->{b}, undef, $BIND);
  mnt("tmpfs", "/tmp", "tmpfs", $NOSUID | $NODEV, "mode=0755");
  mnt("tmpfs", "/dev/shm", "tmpfs", $NOSUID | $NODEV, "mode=0755");
  mnt("tmpfs", $HIDE, "tmpfs", $RDONLY | $NOSUID | $NODEV | $NOEXEC, "mode=0");
  mnt("proc", "/proc", "proc", $NOSUID | $NODEV | $NOEXEC);
  mnt("/proc/sys", "/proc/sys", undef, $BIND);
  mnt("none", "/proc/sys", undef, $REMOUNT | $BIND | $RDONLY | $NOSUID | $NODEV | $NOEXEC);
  drop_capabilities();
  umask(oct $r->{u}) if defined $r->{u};
  chdir $r->{c} or fail("chdir $r->{c}");
  %ENV = map { split /=/, $_, 2 } @$env;
  exec { $argv->[0] } @$argv;
  print STDERR "wmb: cannot run $argv->[0]: $!\n";
  quit(127);
}

local $/ = "\0";
while (1) {
  my (%r, @argv, @env);
  while (defined(my $f = <STDIN>)) {
    chop $f;
    my $tag = substr($f, 0, 1, "");
    last if $tag eq ".";
    if ($tag eq "a") { push @argv, $f } elsif ($tag eq "e") { push @env, $f } else { $r{$tag} = $f }
  }
  exit 0 unless @argv; # wmb closed the lane
  my $child = syscall($CLONE, $NEWNS | $NEWPID | $NEWIPC | $SIGCHLD, 0, 0, 0, 0);
  die "clone: $!" if $child < 0;
  run_command(\%r, \@argv, \@env) if $child == 0;
  waitpid($child, 0);
  syswrite STDOUT, status($?) . "\n";
}
