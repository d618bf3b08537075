#!/usr/bin/perl
# Verify a message from stdin with Mail::DKIM (DKIM, or ARC with --arc), asking only
# the DNS server on 127.0.0.1:$ARGV[0] (the tests' loopback one), never the system's.
# Prints one line per DKIM signature, "<result> d=<domain> s=<selector> a=<algorithm>
# <details>", or for --arc one line "arc=<result> <details>".
use strict;
use warnings;
use Mail::DKIM::DNS;
use Mail::DKIM::Verifier;
use Mail::DKIM::ARC::Verifier;
use Net::DNS::Resolver;

my ($port, $mode) = @ARGV;
die "usage: $0 DNS-PORT [--arc]\n" unless $port;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 0,
    udp_timeout => 5, tcp_timeout => 5, retry => 1,
));

binmode STDIN;
my $verifier = ($mode // '') eq '--arc'
    ? Mail::DKIM::ARC::Verifier->new(Strict => 1)
    : Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z//;   # Mail::DKIM wants CRLF line ends
    $verifier->PRINT("$line\015\012");
}
$verifier->CLOSE;

if (($mode // '') eq '--arc') {
    printf "arc=%s %s\n", $verifier->result, $verifier->result_detail // '';
    exit 0;
}
my @signatures = $verifier->signatures;
print "none\n" unless @signatures;
for my $signature (@signatures) {
    printf "%s d=%s s=%s a=%s %s\n", $signature->result, $signature->domain // '',
        $signature->selector // '', $signature->algorithm // '',
        $signature->result_detail // '';
}
