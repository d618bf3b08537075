#!/usr/bin/perl
# Seal a message from stdin with Mail::DKIM::ARC::Signer (rsa-sha256); print only the
# three new ARC header fields (CRLF-terminated), to be prepended to the message. The
# message must carry an Authentication-Results field with SRV-ID.
# Usage: arc_seal.pl KEY-FILE DOMAIN SELECTOR SRV-ID
use strict;
use warnings;
use Mail::DKIM::ARC::Signer;
use Mail::DKIM::TextWrap;

my ($key_file, $domain, $selector, $srv_id) = @ARGV;
die "usage: $0 KEY-FILE DOMAIN SELECTOR SRV-ID\n" unless $srv_id;
my $signer = Mail::DKIM::ARC::Signer->new(
    Algorithm => 'rsa-sha256',
    Domain    => $domain,
    SrvId     => $srv_id,
    Selector  => $selector,
    KeyFile   => $key_file,
    Chain     => 'ar',
    Headers   => 'from:to:subject:date:message-id:mime-version:content-type',
);
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z//;
    $signer->PRINT("$line\015\012");
}
$signer->CLOSE;
die "not sealed: " . ($signer->result // '') . " " . ($signer->result_detail // '') . "\n"
    unless ($signer->result // '') eq 'sealed';
for my $header ($signer->as_strings) {
    $header =~ s/\015?\012/\015\012/g;
    print $header, "\015\012";
}
