%% PromQL 2.x grammar (yecc) for TimelessMetrics.PromQL.Parser.
%%
%% Mirrors the expression part of Prometheus v2.53's generated_parser.y.
%% Tokens are {Category, Index, Info}: Index is the token's place in the
%% token list (so a syntax error names the exact token) and Info is a map
%% with at least `pos` (byte offset) and `text`.  The actions build a raw
%% tree of tagged tuples that still carries the tokens; the Elixir side
%% (TimelessMetrics.PromQL.Parser) turns it into the documented AST and
%% does every semantic check, in the order Prometheus would report them.

Nonterminals
root expr aggregate_expr aggregate_modifier binary_expr bin_modifier
bool_modifier on_or_ignoring grouping_labels grouping_label_list
grouping_label maybe_label function_call function_call_body
function_call_args paren_expr offset_expr step_invariant_expr
matrix_selector subquery_expr unary_expr vector_selector label_matchers
label_match_list label_matcher match_op metric_name number_literal
string_literal.

Terminals
number string duration identifier metric_identifier aggregator
'by' 'without' 'on' 'ignoring' 'group_left' 'group_right' 'bool' 'offset'
'start' 'end' 'and' 'or' 'unless' 'atan2' '+' '-' '*' '/' '%' '^'
'==' '!=' '<=' '<' '>=' '>' '=~' '!~' '=' '@' ',' '(' ')' '{' '}' '['
']' ':'.

Rootsymbol root.
Endsymbol '$end'.

%% Binary operators, lowest precedence first (as in Prometheus).
Left     10 'or'.
Left     20 'and' 'unless'.
Left     30 '==' '!=' '<=' '<' '>=' '>'.
Left     40 '+' '-'.
Left     50 '*' '/' '%' 'atan2'.
%% Unary +/- binds like `*` (Prometheus: `%prec MUL`), so tighter than
%% `+`, looser than `^`: -2^2 is -(2^2).
Unary    55 unary_expr.
Right    60 '^'.
Nonassoc 70 'offset' '@'.
%% Always try to read a range / subquery when a `[` follows.
Right    80 '['.
%% `x * on(a) group_left (b) y`: a `(` after group_left/group_right opens
%% the include list, as with goyacc's default shift.
Nonassoc  1 'group_left' 'group_right'.
Nonassoc 90 '('.

root -> expr : '$1'.

expr -> aggregate_expr      : '$1'.
expr -> binary_expr         : '$1'.
expr -> function_call       : '$1'.
expr -> matrix_selector     : '$1'.
expr -> number_literal      : '$1'.
expr -> offset_expr         : '$1'.
expr -> paren_expr          : '$1'.
expr -> string_literal      : '$1'.
expr -> subquery_expr       : '$1'.
expr -> unary_expr          : '$1'.
expr -> vector_selector     : '$1'.
expr -> step_invariant_expr : '$1'.

%% Aggregations: the modifier may come before or after the arguments.
aggregate_expr -> aggregator aggregate_modifier function_call_body :
    {aggregate, '$1', {before, '$2'}, '$3'}.
aggregate_expr -> aggregator function_call_body aggregate_modifier :
    {aggregate, '$1', {'after', '$3'}, '$2'}.
aggregate_expr -> aggregator function_call_body :
    {aggregate, '$1', nil, '$2'}.

aggregate_modifier -> 'by' grouping_labels      : {by, '$2'}.
aggregate_modifier -> 'without' grouping_labels : {without, '$2'}.

%% Binary expressions; each operator listed separately for precedence.
binary_expr -> expr '+'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '-'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '*'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '/'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '%'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '^'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr 'atan2'  bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '=='     bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '!='     bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '<='     bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '<'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '>='     bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr '>'      bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr 'and'    bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr 'or'     bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.
binary_expr -> expr 'unless' bin_modifier expr : {binary, '$2', '$1', '$3', '$4'}.

%% {BoolToken | nil, {on | ignoring, Labels} | nil, {left | right, Tok, Labels | nil} | nil}
bin_modifier -> bool_modifier : {'$1', nil, nil}.
bin_modifier -> bool_modifier on_or_ignoring : {'$1', '$2', nil}.
bin_modifier -> bool_modifier on_or_ignoring 'group_left' :
    {'$1', '$2', {left, '$3', nil}}.
bin_modifier -> bool_modifier on_or_ignoring 'group_left' grouping_labels :
    {'$1', '$2', {left, '$3', '$4'}}.
bin_modifier -> bool_modifier on_or_ignoring 'group_right' :
    {'$1', '$2', {right, '$3', nil}}.
bin_modifier -> bool_modifier on_or_ignoring 'group_right' grouping_labels :
    {'$1', '$2', {right, '$3', '$4'}}.

bool_modifier -> '$empty' : nil.
bool_modifier -> 'bool'   : '$1'.

on_or_ignoring -> 'on' grouping_labels       : {on, '$2'}.
on_or_ignoring -> 'ignoring' grouping_labels : {ignoring, '$2'}.

grouping_labels -> '(' grouping_label_list ')'     : lists:reverse('$2').
grouping_labels -> '(' grouping_label_list ',' ')' : lists:reverse('$2').
grouping_labels -> '(' ')'                         : [].

grouping_label_list -> grouping_label_list ',' grouping_label : ['$3' | '$1'].
grouping_label_list -> grouping_label                         : ['$1'].

grouping_label -> maybe_label : '$1'.

%% Keywords that may also be label names in grouping lists.
maybe_label -> aggregator        : '$1'.
maybe_label -> 'bool'            : '$1'.
maybe_label -> 'by'              : '$1'.
maybe_label -> 'group_left'      : '$1'.
maybe_label -> 'group_right'     : '$1'.
maybe_label -> identifier        : '$1'.
maybe_label -> 'ignoring'        : '$1'.
maybe_label -> 'and'             : '$1'.
maybe_label -> 'or'              : '$1'.
maybe_label -> 'unless'          : '$1'.
maybe_label -> metric_identifier : '$1'.
maybe_label -> 'offset'          : '$1'.
maybe_label -> 'on'              : '$1'.
maybe_label -> 'start'           : '$1'.
maybe_label -> 'end'             : '$1'.
maybe_label -> 'atan2'           : '$1'.

%% Function calls.  Arguments are kept in order as {arg, Expr} and
%% {trailing_comma, Token} items.
function_call -> identifier function_call_body : {call, '$1', '$2'}.

function_call_body -> '(' function_call_args ')' : {body, '$1', lists:reverse('$2'), '$3'}.
function_call_body -> '(' ')'                    : {body, '$1', [], '$2'}.

function_call_args -> function_call_args ',' expr : [{arg, '$3'} | '$1'].
function_call_args -> expr                        : [{arg, '$1'}].
function_call_args -> function_call_args ','      : [{trailing_comma, '$2'} | '$1'].

paren_expr -> '(' expr ')' : {paren, '$1', '$2', '$3'}.

%% Modifiers.
offset_expr -> expr 'offset' duration     : {offset, '$1', '$2', false, '$3'}.
offset_expr -> expr 'offset' '-' duration : {offset, '$1', '$2', true, '$4'}.

step_invariant_expr -> expr '@' number          : {at, '$1', '$2', {number, nil, '$3'}}.
step_invariant_expr -> expr '@' '+' number      : {at, '$1', '$2', {number, '$3', '$4'}}.
step_invariant_expr -> expr '@' '-' number      : {at, '$1', '$2', {number, '$3', '$4'}}.
step_invariant_expr -> expr '@' 'start' '(' ')' : {at, '$1', '$2', {preprocessor, start}}.
step_invariant_expr -> expr '@' 'end' '(' ')'   : {at, '$1', '$2', {preprocessor, 'end'}}.

%% Range selectors and subqueries.
matrix_selector -> expr '[' duration ']' : {matrix, '$1', '$2', '$3'}.

subquery_expr -> expr '[' duration ':' ']'          : {subquery, '$1', '$2', '$3', nil}.
subquery_expr -> expr '[' duration ':' duration ']' : {subquery, '$1', '$2', '$3', '$5'}.

unary_expr -> '+' expr : {unary, '$1', '$2'}.
unary_expr -> '-' expr : {unary, '$1', '$2'}.

%% Vector selectors.
vector_selector -> metric_name label_matchers : {vector_selector, '$1', '$2'}.
vector_selector -> metric_name                : {vector_selector, '$1', nil}.
vector_selector -> label_matchers             : {vector_selector, nil, '$1'}.

label_matchers -> '{' label_match_list '}'     : {matchers, '$1', lists:reverse('$2')}.
label_matchers -> '{' label_match_list ',' '}' : {matchers, '$1', lists:reverse('$2')}.
label_matchers -> '{' '}'                      : {matchers, '$1', []}.

label_match_list -> label_match_list ',' label_matcher : ['$3' | '$1'].
label_match_list -> label_matcher                      : ['$1'].

label_matcher -> identifier match_op string : {'$1', '$2', '$3'}.

match_op -> '='  : '$1'.
match_op -> '!=' : '$1'.
match_op -> '=~' : '$1'.
match_op -> '!~' : '$1'.

%% Keywords that may also be metric names (Prometheus's metric_identifier).
metric_name -> aggregator        : '$1'.
metric_name -> 'by'              : '$1'.
metric_name -> identifier        : '$1'.
metric_name -> 'and'             : '$1'.
metric_name -> 'or'              : '$1'.
metric_name -> 'unless'          : '$1'.
metric_name -> metric_identifier : '$1'.
metric_name -> 'offset'          : '$1'.
metric_name -> 'without'         : '$1'.
metric_name -> 'start'           : '$1'.
metric_name -> 'end'             : '$1'.

number_literal -> number : {number, '$1'}.
string_literal -> string : {string, '$1'}.

Erlang code.
