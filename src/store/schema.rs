//! Diesel table definitions, matching `migrations/sqlite` and `migrations/postgres`
//! (kept in step by hand: both backends share these column types on purpose).

diesel::table! {
    pbx (id) {
        id -> Text,
        name -> Text,
        sip_domain -> Text,
        created_at -> BigInt,
        default_caller_id_name -> Nullable<Text>,
        default_caller_id_number -> Nullable<Text>,
    }
}

diesel::table! {
    api_key (id) {
        id -> Text,
        pbx_id -> Text,
        prefix -> Text,
        lookup -> Text,
        secret_hash -> Text,
        scopes -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    extension (id) {
        id -> Text,
        pbx_id -> Text,
        number -> Text,
        name -> Text,
        kind -> Text,
        caller_id_name -> Nullable<Text>,
        caller_id_number -> Nullable<Text>,
        voicemail_enabled -> Bool,
        forwarding_number -> Nullable<Text>,
        forwarding_ring_timeout -> Integer,
        manual_presence -> Nullable<Text>,
        sip_username -> Text,
        ha1_md5 -> Text,
        ha1_sha256 -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        conference_pin -> Nullable<Text>,
        max_participants -> Integer,
    }
}

diesel::joinable!(api_key -> pbx (pbx_id));
diesel::joinable!(extension -> pbx (pbx_id));
diesel::allow_tables_to_appear_in_same_query!(
    pbx,
    api_key,
    extension,
    device,
    call,
    mailbox,
    voicemail_message
);

diesel::table! {
    device (id) {
        id -> Text,
        pbx_id -> Text,
        extension_id -> Text,
        binding_key -> Text,
        instance_id -> Nullable<Text>,
        contact -> Text,
        transport -> Text,
        source_ip -> Text,
        source_port -> Integer,
        user_agent -> Nullable<Text>,
        device_type -> Text,
        manufacturer -> Nullable<Text>,
        model -> Nullable<Text>,
        mac_address -> Nullable<Text>,
        call_id -> Text,
        cseq -> BigInt,
        first_registered -> BigInt,
        last_registered -> BigInt,
        expires_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
        node_id -> Text,
    }
}

diesel::joinable!(device -> extension (extension_id));

diesel::table! {
    call (id) {
        id -> Text,
        pbx_id -> Text,
        sip_call_id -> Text,
        direction -> Text,
        caller_extension_id -> Nullable<Text>,
        caller_number -> Text,
        caller_name -> Nullable<Text>,
        callee_extension_id -> Nullable<Text>,
        callee_number -> Text,
        callee_name -> Nullable<Text>,
        state -> Text,
        started_at -> BigInt,
        answered_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        answered_by -> Nullable<Text>,
        disposition -> Nullable<Text>,
        hangup_side -> Nullable<Text>,
        end_reason -> Nullable<Text>,
        forwarded_to -> Nullable<Text>,
        node_id -> Text,
    }
}

diesel::table! {
    mailbox (extension_id) {
        extension_id -> Text,
        pbx_id -> Text,
        greeting_file -> Nullable<Text>,
        notify_email -> Nullable<Text>,
        pin_hash -> Nullable<Text>,
        max_message_seconds -> Integer,
        retention_days -> Integer,
        updated_at -> BigInt,
    }
}

diesel::table! {
    voicemail_message (id) {
        id -> Text,
        pbx_id -> Text,
        extension_id -> Text,
        caller_number -> Text,
        caller_name -> Nullable<Text>,
        duration_ms -> BigInt,
        created_at -> BigInt,
        heard_at -> Nullable<BigInt>,
        audio_file -> Text,
    }
}
