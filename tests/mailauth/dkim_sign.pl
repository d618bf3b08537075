#!/usr/bin/perl
# Sign a message from stdin with Mail::DKIM::Signer; print only the DKIM-Signature
# header field (CRLF-terminated), to be prepended to the message.
# Usage: dkim_sign.pl KEY-FILE DOMAIN SELECTOR [ALGORITHM]   (default rsa-sha256)
use strict;
use warnings;
use Mail::DKIM::Signer;
use Mail::DKIM::TextWrap;

my ($key_file, $domain, $selector, $algorithm) = @ARGV;
die "usage: $0 KEY-FILE DOMAIN SELECTOR [ALGORITHM]\n" unless $selector;
my $signer = Mail::DKIM::Signer->new(
    Algorithm => $algorithm // 'rsa-sha256',
    Method    => 'relaxed/relaxed',
    Domain    => $domain,
    Selector  => $selector,
    KeyFile   => $key_file,
    Headers   => 'from:to:subject:date:message-id:mime-version:content-type',
);
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z//;
    $signer->PRINT("$line\015\012");
}
$signer->CLOSE;
my $header = $signer->signature->as_string;
$header =~ s/\015?\012/\015\012/g;
print $header, "\015\012";
