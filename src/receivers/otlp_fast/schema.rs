//! The OTLP trace schema (opentelemetry-proto 1.x) as the decoder needs it:
//! each message's field numbers, names (for error messages) and kinds, so
//! every field the graph does not read is still checked as prost would.

use super::wire::WireType;

/// What a known field holds, which fixes its wire type and how it is checked.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Message(&'static Schema),
}

impl Kind {
    pub(super) fn wire_type(self) -> WireType {
        match self {
            Kind::Varint => WireType::Varint,
            Kind::Fixed64 => WireType::SixtyFourBit,
            Kind::Fixed32 => WireType::ThirtyTwoBit,
            Kind::Bytes | Kind::Str | Kind::Message(_) => WireType::LengthDelimited,
        }
    }
}

/// The fields of one message of the OTLP trace schema (opentelemetry-proto 1.x).
pub(super) struct Schema {
    pub(super) name: &'static str,
    fields: &'static [(u32, &'static str, Kind)],
}

impl Schema {
    pub(super) fn field(&self, tag: u32) -> Option<(&'static str, Kind)> {
        self.fields
            .iter()
            .find(|f| f.0 == tag)
            .map(|&(_, name, kind)| (name, kind))
    }

    pub(super) fn name_of(&self, tag: u32) -> &'static str {
        self.field(tag).map_or("?", |f| f.0)
    }
}

pub(super) static REQUEST: Schema = Schema {
    name: "ExportTraceServiceRequest",
    fields: &[(1, "resource_spans", Kind::Message(&RESOURCE_SPANS))],
};
pub(super) static RESOURCE_SPANS: Schema = Schema {
    name: "ResourceSpans",
    fields: &[
        (1, "resource", Kind::Message(&RESOURCE)),
        (2, "scope_spans", Kind::Message(&SCOPE_SPANS)),
        (3, "schema_url", Kind::Str),
    ],
};
pub(super) static RESOURCE: Schema = Schema {
    name: "Resource",
    fields: &[
        (1, "attributes", Kind::Message(&KEY_VALUE)),
        (2, "dropped_attributes_count", Kind::Varint),
        (3, "entity_refs", Kind::Message(&ENTITY_REF)),
    ],
};
pub(super) static ENTITY_REF: Schema = Schema {
    name: "EntityRef",
    fields: &[
        (1, "schema_url", Kind::Str),
        (2, "type", Kind::Str),
        (3, "id_keys", Kind::Str),
        (4, "description_keys", Kind::Str),
    ],
};
pub(super) static SCOPE_SPANS: Schema = Schema {
    name: "ScopeSpans",
    fields: &[
        (1, "scope", Kind::Message(&SCOPE)),
        (2, "spans", Kind::Message(&SPAN)),
        (3, "schema_url", Kind::Str),
    ],
};
pub(super) static SCOPE: Schema = Schema {
    name: "InstrumentationScope",
    fields: &[
        (1, "name", Kind::Str),
        (2, "version", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
pub(super) static SPAN: Schema = Schema {
    name: "Span",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "parent_span_id", Kind::Bytes),
        (5, "name", Kind::Str),
        (6, "kind", Kind::Varint),
        (7, "start_time_unix_nano", Kind::Fixed64),
        (8, "end_time_unix_nano", Kind::Fixed64),
        (9, "attributes", Kind::Message(&KEY_VALUE)),
        (10, "dropped_attributes_count", Kind::Varint),
        (11, "events", Kind::Message(&EVENT)),
        (12, "dropped_events_count", Kind::Varint),
        (13, "links", Kind::Message(&LINK)),
        (14, "dropped_links_count", Kind::Varint),
        (15, "status", Kind::Message(&STATUS)),
        (16, "flags", Kind::Fixed32),
    ],
};
pub(super) static EVENT: Schema = Schema {
    name: "Span.Event",
    fields: &[
        (1, "time_unix_nano", Kind::Fixed64),
        (2, "name", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
pub(super) static LINK: Schema = Schema {
    name: "Span.Link",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "attributes", Kind::Message(&KEY_VALUE)),
        (5, "dropped_attributes_count", Kind::Varint),
        (6, "flags", Kind::Fixed32),
    ],
};
pub(super) static STATUS: Schema = Schema {
    name: "Status",
    fields: &[(2, "message", Kind::Str), (3, "code", Kind::Varint)],
};
pub(super) static KEY_VALUE: Schema = Schema {
    name: "KeyValue",
    fields: &[
        (1, "key", Kind::Str),
        (2, "value", Kind::Message(&ANY_VALUE)),
        (3, "key_strindex", Kind::Varint),
    ],
};
pub(super) static ANY_VALUE: Schema = Schema {
    name: "AnyValue",
    fields: &[
        (1, "string_value", Kind::Str),
        (2, "bool_value", Kind::Varint),
        (3, "int_value", Kind::Varint),
        (4, "double_value", Kind::Fixed64),
        (5, "array_value", Kind::Message(&ARRAY_VALUE)),
        (6, "kvlist_value", Kind::Message(&KEY_VALUE_LIST)),
        (7, "bytes_value", Kind::Bytes),
        (8, "string_value_strindex", Kind::Varint),
    ],
};
pub(super) static ARRAY_VALUE: Schema = Schema {
    name: "ArrayValue",
    fields: &[(1, "values", Kind::Message(&ANY_VALUE))],
};
pub(super) static KEY_VALUE_LIST: Schema = Schema {
    name: "KeyValueList",
    fields: &[(1, "values", Kind::Message(&KEY_VALUE))],
};
