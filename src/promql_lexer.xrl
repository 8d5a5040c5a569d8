%% PromQL 2.x lexer (leex) for TimelessMetrics.PromQL.Parser.
%%
%% This scanner only knows the context-free part of PromQL: blanks,
%% comments, words, quoted strings, operators and punctuation.  It runs
%% over the query's raw bytes (not code points), so the length of every
%% token is its length in bytes, which is how Prometheus reports
%% positions.  The context-dependent rules of Prometheus's lexer (words
%% inside braces are always label names, a number or duration after `[`,
%% keyword lookup, escape validation, numbers and durations) are applied
%% by the driver in TimelessMetrics.PromQL.Parser, which calls token/2
%% one token at a time.

Definitions.

WS   = [\s\t\r\n]
WORD = [a-zA-Z_:][a-zA-Z0-9_:]*
DQ   = \"([^\"\\\n]|\\[^\n])*
SQ   = \'([^\'\\\n]|\\[^\n])*
BQ   = `[^`]*

Rules.

{WS}+           : {token, {ws, TokenLen}}.
#[^\r\n]*       : {token, {comment, TokenLen}}.
{WORD}          : {token, {word, TokenChars}}.
{DQ}\"          : {token, {string, TokenChars}}.
{DQ}\\?         : {token, {open_string, TokenChars}}.
{SQ}\'          : {token, {string, TokenChars}}.
{SQ}\\?         : {token, {open_string, TokenChars}}.
{BQ}`           : {token, {string, TokenChars}}.
{BQ}            : {token, {open_string, TokenChars}}.
==|!=|<=|>=     : {token, {op, TokenChars}}.
=~|!~           : {token, {op, TokenChars}}.
[-+*/%^@,<>=!]  : {token, {op, TokenChars}}.
[(){}]          : {token, {op, TokenChars}}.
\[|\]           : {token, {op, TokenChars}}.
.               : {token, {char, TokenChars}}.

Erlang code.
